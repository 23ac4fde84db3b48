"""Loading checkpoints as untrusted input.

A checkpoint is a pickle: unpickling an arbitrary one can run arbitrary code.
Every checkpoint mmkd loads goes through :func:`safe_torch_load`:

1. The file must be a PyTorch file (zip or legacy format); an HTML page, a
   truncated download or random bytes get an error that says so.
2. Its pickle is scanned (nothing executed) for the names of codecs whose
   decoding time is quadratic (:mod:`mmkd.utils.pickle_scan`).
3. ``torch.load(weights_only=True)`` rebuilds tensors, plain containers and
   the globals allow-listed here: mmengine's ``HistoryBuffer`` (message hub),
   a ``getattr`` that only returns ``HistoryBuffer`` statistics methods, and
   stand-ins for numpy's arrays, scalars and dtypes that hold plain values
   until they are validated and rebuilt as numeric numpy values
   (:mod:`mmkd.utils.safe_numpy`; object arrays are refused).

:func:`register_safe_checkpoint_loaders`, called once when ``mmkd`` is
imported, replaces mmengine's checkpoint loaders for the whole process (the
``CheckpointLoader`` schemes used by ``load_from``, ``--resume``,
``load_checkpoint`` and the backbones' ``init_cfg``): local files, http(s)
URLs (:mod:`mmkd.utils.checkpoint_download`), ``open-mmlab://``,
``openmmlab://``, ``torchvision://``, ``modelzoo://``, ``mmcls://``, ``s3://``
and ``petrel://`` load safely; ``pavi://`` is refused. Checkpoints loaded
through these schemes are also cleaned of what mmengine's resume would
execute or delete (:func:`sanitize_runner_state`).

Nothing is switched off globally, and ``torch.load`` itself is not changed.
"""
import io
import logging
import os
import os.path as osp
import pickle
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any, Callable, Iterator, List, Optional, Union

import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .pickle_scan import check_codecs
from .safe_numpy import numpy_stub_globals, rebuild_numpy


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allow-list of plain types."""


class CheckpointFormatError(ValueError):
    """A file is not a readable PyTorch checkpoint (empty, truncated, an HTML
    page, random bytes)."""


#: Tells the user what not to do, in every refusal.
NEVER_SWITCH_OFF = (
    'Nothing in the file has been run. Do not load it with '
    'torch.load(weights_only=False) or switch this check off: that is how a '
    'malicious checkpoint runs its code. If the file comes from a source you '
    'trust, ask for (or export there) a plain weights file, e.g. '
    "{'state_dict': model.state_dict()}.")

# HistoryBuffer fills its class-level table on first instantiation, so a fresh
# process may not have them yet.
_BUILTIN_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})

# what the scheme loaders are loading, for their messages
_PURPOSE: ContextVar[str] = ContextVar(
    'mmkd_checkpoint_purpose',
    default='checkpoint (load_from, --resume or an init_cfg checkpoint)')


@contextmanager
def checkpoint_purpose(what: str) -> Iterator[None]:
    """Name what the checkpoints loaded inside the block are for (and the
    config key that named them) in the messages of mmengine's scheme loaders,
    e.g. ``'teacher checkpoint (model.teacher_checkpoint)'``."""
    token = _PURPOSE.set(what)
    try:
        yield
    finally:
        _PURPOSE.reset(token)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may call: a ``HistoryBuffer``
    statistics method (``mean``, ``min``, ...)."""
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed while loading a '
        'checkpoint (only HistoryBuffer statistics methods are).')


def _empty_bytes(*args: Any) -> bytes:
    """The only ``bytes(...)`` call a checkpoint may make: ``bytes()``, how
    pickle protocol 2 stores ``b''`` (e.g. the data of an empty array)."""
    if args:
        raise pickle.UnpicklingError(
            f'bytes{args!r:.60} is not allowed while loading a checkpoint '
            '(only bytes() is).')
    return b''


def safe_globals() -> List[Any]:
    """The allow-list passed to ``torch.serialization.safe_globals``."""
    return numpy_stub_globals() + [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        (_empty_bytes, 'builtins.bytes'),
    ]


def _unpickler_reason(error: Exception) -> str:
    """The one-line reason of torch's weights-only refusal, without its
    advice to switch the check off or to allow-list the global."""
    text = str(error)
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:', 1)[1]
    text = text.split('Check the documentation of torch.load')[0]
    text = text.split(' Please use `torch.serialization')[0]
    return ' '.join(text.split()) or type(error).__name__


def _check_format(file: IO[bytes], what: str, name: str) -> None:
    start = file.tell()
    head = file.read(4)
    file.seek(start)
    if not head:
        raise CheckpointFormatError(
            f'{what}: {name} is empty (an interrupted download or save?). '
            'Give the path of a complete checkpoint.')
    if head.startswith(b'PK') or head.startswith(b'\x80\x02'):
        return  # torch's zip format, or the legacy pickle format
    looks_like = 'an HTML page (a login or error page saved instead of the ' \
        'file?)' if head.lstrip()[:1] == b'<' else 'not a PyTorch file'
    raise CheckpointFormatError(
        f'{what}: {name} is not a PyTorch checkpoint: it starts with '
        f'{head!r}, {looks_like}. Give the path of a file written by '
        'torch.save.')


def safe_torch_load(file: Union[str, IO[bytes]],
                    map_location: Optional[Union[str, Callable]] = 'cpu',
                    what: str = 'checkpoint') -> Any:
    """Load an untrusted checkpoint: ``torch.load(weights_only=True)`` with
    mmkd's allow-list, after format and codec checks.

    Args:
        file (str | file-like): A local path or an open, seekable binary
            file.
        map_location (str | callable, optional): As in ``torch.load``.
        what (str): What is loaded and the config key that named it, for
            messages (e.g. ``'teacher checkpoint (model.teacher_checkpoint)'``).

    Returns:
        Any: The unpickled checkpoint, numpy values rebuilt.

    Raises:
        FileNotFoundError: ``file`` is a path that does not exist.
        CheckpointFormatError: The file is not a readable PyTorch checkpoint.
        UnsafeCheckpointError: The file holds a global outside the
            allow-list, a non-numeric numpy value or a quadratic codec
            (nothing in it has been executed).
    """
    if isinstance(file, str):
        path = osp.expanduser(file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{what}: no such file: {file}. Check the path (relative '
                f'paths start from {os.getcwd()}).')
        with open(path, 'rb') as f:
            return safe_torch_load(f, map_location, what)
    name = getattr(file, 'name', '<file object>')
    _check_format(file, what, name)
    try:
        check_codecs(file)
        with torch.serialization.safe_globals(safe_globals()):
            checkpoint = torch.load(
                file, map_location=map_location, weights_only=True)
        return rebuild_numpy(checkpoint)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f'Refusing to load {what} {name}: it holds Python objects outside '
            'the allow-list of plain types (tensors, containers, numbers, '
            'strings, numeric numpy values, mmengine HistoryBuffer), so '
            'unpickling it could run code or crash the process. The check '
            f'found: {_unpickler_reason(e)}\n{NEVER_SWITCH_OFF}') from None
    except (EOFError, RuntimeError, ValueError, OSError) as e:
        raise CheckpointFormatError(
            f'{what}: {name} is not a readable PyTorch checkpoint (truncated '
            f'or damaged?): {" ".join(str(e).split()[:30]) or type(e).__name__}'
            '. Download or copy it again.') from None


# ---------------------------------------------------------------- resume ----

# runtime-info keys that name checkpoint files, and the file names each may
# have: CheckpointHook deletes best_ckpt* ("the previous best") when it saves
# a new best, named best_<metric>_<iter_N.pth | epoch_N.pth>
BEST_CKPT_KEY = re.compile(r'^best_ckpt(_.+)?$')
_PATH_INFO = {
    BEST_CKPT_KEY: re.compile(r'^best_.+\.pth$'),
    re.compile(r'^last_ckpt$'): re.compile(r'^.+\.pth$'),
}


def sanitize_runner_state(checkpoint: Any, source: Optional[str]) -> Any:
    """Remove from a loaded checkpoint what mmengine's ``Runner.resume`` and
    ``CheckpointHook`` would execute or turn into file removals, in place.

    - ``meta['config']``: ``Runner.resume`` executes it as Python
      (``Config.fromstring(..., '.py')``) only to read ``gpu_ids``. It is
      removed (the check it served is skipped).
    - ``message_hub.runtime_info`` ``best_ckpt*``: paths that
      ``CheckpointHook`` deletes ("the previous best"). Kept only when they
      name a ``best_*.pth`` file in the folder of the checkpoint being loaded
      (``source``), i.e. a best checkpoint of that run; ``last_ckpt`` only
      when it names a ``.pth`` file there. Otherwise removed, with a
      warning.
    - ``keep_ckpt_ids``: checkpoint steps ``CheckpointHook`` deletes; kept
      only as a list of non-negative ints.

    Args:
        checkpoint: The loaded checkpoint.
        source (str, optional): Local path it was loaded from; None for a
            download (then no path is kept).

    Returns:
        The checkpoint.
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    meta = checkpoint.get('meta')
    if isinstance(meta, dict) and 'config' in meta:
        meta.pop('config')
        print_log("Dropped meta['config'] of the loaded checkpoint: mmengine "
                  'would execute it as Python on resume.', logger='current',
                  level=logging.DEBUG)
    hub = checkpoint.get('message_hub')
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    if not isinstance(info, dict):
        return checkpoint
    folder = osp.realpath(osp.dirname(source)) if source else None
    for key in list(info):
        names = [name for pattern, name in _PATH_INFO.items()
                 if isinstance(key, str) and pattern.match(key)]
        if not names:
            continue
        value = info[key]
        ok = (folder is not None and isinstance(value, str)
              and names[0].match(osp.basename(value)) is not None
              and osp.realpath(osp.dirname(osp.abspath(value))) == folder)
        if not ok:
            info.pop(key)
            print_log(
                f'Ignored message_hub.runtime_info.{key} = {value!r:.200} of '
                'the loaded checkpoint: it does not name a checkpoint file '
                'beside the loaded one, and mmengine would delete that path.',
                logger='current', level=logging.WARNING)
    ids = info.get('keep_ckpt_ids')
    if ids is not None and not (isinstance(ids, list) and all(
            type(i) is int and i >= 0 for i in ids)):
        info.pop('keep_ckpt_ids')
        print_log(f'Ignored message_hub.runtime_info.keep_ckpt_ids = '
                  f'{ids!r:.200}: expected a list of iteration numbers.',
                  logger='current', level=logging.WARNING)
    return checkpoint


# --------------------------------------------------------------- schemes ----

def _load_local(filename: str, map_location=None) -> Any:
    path = osp.expanduser(filename)
    return sanitize_runner_state(
        safe_torch_load(path, map_location, what=_PURPOSE.get()), path)


def _load_http(filename: str, map_location=None) -> Any:
    from .checkpoint_download import load_url
    return sanitize_runner_state(
        load_url(filename, map_location, what=_PURPOSE.get()), None)


def _load_torchvision(filename: str, map_location=None) -> Any:
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    return _load_http(_model_url(get_torchvision_models(), name, filename),
                      map_location)


def _load_openmmlab(filename: str, map_location=None) -> Any:
    from mmengine.runner.checkpoint import (_get_mmengine_home,
                                            get_deprecated_model_names,
                                            get_external_models)
    name = filename.split('://', 1)[1]
    name = get_deprecated_model_names().get(name, name)
    url = _model_url(get_external_models(), name, filename)
    if url.startswith(('http://', 'https://')):
        return _load_http(url, map_location)
    return _load_local(osp.join(_get_mmengine_home(), url), map_location)


def _load_mmcls(filename: str, map_location=None) -> Any:
    from mmengine.runner.checkpoint import (_process_mmcls_checkpoint,
                                            get_mmcls_models)
    name = filename.split('://', 1)[1]
    return _process_mmcls_checkpoint(_load_http(
        _model_url(get_mmcls_models(), name, filename), map_location))


def _load_object_storage(filename: str, map_location=None) -> Any:
    from mmengine.fileio import get_file_backend
    backend = get_file_backend(filename, backend_args={'backend': 'petrel'})
    with io.BytesIO(backend.get(filename)) as buffer:
        buffer.name = filename
        return sanitize_runner_state(
            safe_torch_load(buffer, map_location, what=_PURPOSE.get()), None)


def _refuse_pavi(filename: str, map_location=None) -> Any:
    raise UnsafeCheckpointError(
        f'{_PURPOSE.get()}: {filename}: mmkd cannot load pavi:// '
        'checkpoints safely (pavi downloads and unpickles them itself). '
        'Download the file and give its local path.')


def _model_url(table: dict, name: str, filename: str) -> str:
    if name not in table:
        raise KeyError(f'{_PURPOSE.get()}: {filename}: unknown model name '
                       f"'{name}'; known names include {sorted(table)[:8]}.")
    return table[name]


#: scheme prefix(es) -> safe loader; every scheme mmengine registers
SAFE_SCHEMES = {
    '': _load_local,
    ('http://', 'https://'): _load_http,
    ('torchvision://', 'modelzoo://'): _load_torchvision,
    ('open-mmlab://', 'openmmlab://'): _load_openmmlab,
    'mmcls://': _load_mmcls,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): _load_object_storage,
    'pavi://': _refuse_pavi,
}

_installed = False


def register_safe_checkpoint_loaders() -> None:
    """Route every mmengine checkpoint scheme through mmkd's safe loading
    (see the module docstring), for the whole process. Logged once per
    process, at INFO level: ``import mmkd`` changes mmengine's behaviour, and
    says so."""
    global _installed
    for prefixes, loader in SAFE_SCHEMES.items():
        CheckpointLoader.register_scheme(prefixes=prefixes, force=True)(loader)
    if not _installed:
        _installed = True
        print_log(
            "mmkd: mmengine's checkpoint loaders are replaced for this "
            'process: checkpoints loaded through mmengine (load_from, '
            'resume, load_checkpoint, init_cfg) are treated as untrusted '
            '(weights_only=True with a plain-type allow-list).',
            logger='current', level=logging.INFO)

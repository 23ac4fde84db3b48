"""mmengine's checkpoint schemes (``load_from``, ``--resume``,
``load_checkpoint``, ``init_cfg``), each routed through
:func:`~mmkd.checkpoint.safe_torch_load` and cleaned of what mmengine's
resume would execute or delete; ``pavi://`` is refused."""
import io
import logging
import os.path as osp
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .download import load_url
from .errors import UnsafeCheckpointError
from .resume_state import sanitize_runner_state
from .safe_load import safe_torch_load

# what the scheme loaders are loading, for their messages
_PURPOSE: ContextVar[str] = ContextVar(
    'mmkd_checkpoint_purpose',
    default='checkpoint (load_from, --resume or an init_cfg checkpoint)')


@contextmanager
def checkpoint_purpose(what: str) -> Iterator[None]:
    """Name what the checkpoints loaded inside the block are for in the
    scheme loaders' messages (``what``: e.g. ``'teacher checkpoint
    (model.teacher_checkpoint)'``)."""
    token = _PURPOSE.set(what)
    try:
        yield
    finally:
        _PURPOSE.reset(token)


def _load_local(filename: str, map_location=None) -> Any:
    path = osp.expanduser(filename)
    return sanitize_runner_state(
        safe_torch_load(path, map_location, what=_PURPOSE.get()), path)


def _load_http(filename: str, map_location=None) -> Any:
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
    """Route every mmengine checkpoint scheme through mmkd, for the whole
    process (said once, at INFO level)."""
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

"""mmengine's checkpoint schemes routed through :func:`.safe_torch_load`,
downloads and resume state (``docs/checkpoint_safety.md``)."""
import hashlib
import io
import logging
import os
import os.path as osp
import re
import urllib.error
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Optional
from urllib.parse import urlparse

import mmengine.runner.checkpoint as mmengine_checkpoint
import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log

from .errors import UnsafeCheckpointError
from .safe_load import safe_torch_load

# what the scheme loaders are loading, for their messages
_PURPOSE: ContextVar[str] = ContextVar(
    'mmkd_checkpoint_purpose',
    default='checkpoint (load_from, --resume or an init_cfg checkpoint)')
_installed = False
#: scheme -> mmengine's function that gives its table of model URLs
_TABLES = {'torchvision': 'get_torchvision_models',
           'modelzoo': 'get_torchvision_models',
           'open-mmlab': 'get_external_models',
           'openmmlab': 'get_external_models', 'mmcls': 'get_mmcls_models'}
#: torch.hub's convention: ``name-<sha256 prefix>.ext``
HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')
# runtime-info keys that name files CheckpointHook deletes, and their names
BEST_CKPT_KEY = re.compile(r'^best_ckpt(_.+)?$')
_PATH_INFO = {
    BEST_CKPT_KEY: re.compile(r'^best_.+\.pth$'),
    re.compile(r'^last_ckpt$'): re.compile(r'^.+\.pth$'),
}


def cached_path(url: str) -> str:
    """``<torch hub dir>/checkpoints/mmkd/<16 hex digits of sha256(url)>_<file
    name>``, apart from torch.hub's own cache."""
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    digest = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmkd',
                    f'{digest}_{name}')


def _download(url: str, path: str, what: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    named = HASH_IN_NAME.search(osp.basename(urlparse(url).path))
    try:
        torch.hub.download_url_to_file(
            url, path, hash_prefix=named and named.group(1), progress=False)
    except (urllib.error.URLError, OSError) as e:
        raise OSError(f'{what}: cannot download {url}: {e}. Check the URL '
                      'and the network, or give a local path.') from None
    except RuntimeError as e:  # hash mismatch
        raise RuntimeError(f'{what}: the download of {url} does not match '
                           f'the hash in its file name ({e}); it was not '
                           'kept. Check the URL.') from None


def load_url(url: str, map_location=None,
             what: str = 'checkpoint') -> Any:
    """Download ``url`` once (rank 0 first) and load it safely.

    Args:
        url (str): An http(s) URL.
        map_location: As in ``torch.load``.
        what (str): What is loaded and its config key, for messages.
    """
    rank, world_size = get_dist_info()
    path = cached_path(url)
    if rank == 0 and not osp.isfile(path):
        _download(url, path, what)
    if world_size > 1:
        torch.distributed.barrier()
        if not osp.isfile(path):  # a cache that ranks do not share
            _download(url, path, what)
    try:
        return safe_torch_load(path, map_location, what=f'{what} {url}')
    except Exception:
        if osp.isfile(path):
            os.remove(path)
        raise


def sanitize_runner_state(checkpoint: Any, source: Optional[str]) -> Any:
    """Remove, in place, what mmengine's resume would execute or delete:
    ``meta['config']``, and runtime-info paths other than checkpoints beside
    ``source`` (the rules: ``docs/checkpoint_safety.md``).

    Args:
        checkpoint: The loaded checkpoint.
        source (str, optional): Local path it was loaded from; None for a
            download (then no path is kept).
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    meta = checkpoint.get('meta')
    if isinstance(meta, dict) and 'config' in meta:
        meta.pop('config')
        print_log("Dropped meta['config'] of the loaded checkpoint (mmengine "
                  'would execute it).', logger='current', level=logging.DEBUG)
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
            print_log(f'Ignored runtime_info.{key} = {value!r:.200} of the '
                      'loaded checkpoint: not a checkpoint beside it, and '
                      'mmengine would delete it.', logger='current',
                      level=logging.WARNING)
    ids = info.get('keep_ckpt_ids')
    if ids is not None and not (isinstance(ids, list) and all(
            type(i) is int and i >= 0 for i in ids)):
        info.pop('keep_ckpt_ids')
        print_log(f'Ignored runtime_info.keep_ckpt_ids = {ids!r:.200}: not a '
                  'list of steps.', logger='current', level=logging.WARNING)
    return checkpoint


@contextmanager
def checkpoint_purpose(what: str) -> Iterator[None]:
    """Name what the checkpoints loaded inside the block are for (``what``,
    e.g. ``'teacher checkpoint (model.teacher_checkpoint)'``), for messages."""
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


def _load_named(filename: str, map_location=None) -> Any:
    """A model name (``torchvision://resnet50``) in mmengine's tables."""
    scheme, name = filename.split('://', 1)
    table = getattr(mmengine_checkpoint, _TABLES[scheme])()
    if 'mmlab' in scheme:
        name = mmengine_checkpoint.get_deprecated_model_names().get(name, name)
    if name not in table:
        raise KeyError(f'{_PURPOSE.get()}: {filename}: unknown model name '
                       f"'{name}'; known names include {sorted(table)[:8]}.")
    if not table[name].startswith(('http://', 'https://')):
        return _load_local(osp.join(mmengine_checkpoint._get_mmengine_home(),
                                    table[name]), map_location)
    loaded = _load_http(table[name], map_location)
    return mmengine_checkpoint._process_mmcls_checkpoint(loaded) \
        if scheme == 'mmcls' else loaded


def _load_object_storage(filename: str, map_location=None) -> Any:
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


#: scheme prefix(es) -> safe loader; every scheme mmengine registers
SAFE_SCHEMES = {
    '': _load_local,
    ('http://', 'https://'): _load_http,
    tuple(f'{scheme}://' for scheme in _TABLES): _load_named,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): _load_object_storage,
    'pavi://': _refuse_pavi,
}


def register_safe_checkpoint_loaders() -> None:
    """Route every mmengine checkpoint scheme through mmkd (logged once)."""
    global _installed
    for prefixes, loader in SAFE_SCHEMES.items():
        mmengine_checkpoint.CheckpointLoader.register_scheme(
            prefixes=prefixes, force=True)(loader)
    if not _installed:
        _installed = True
        print_log(
            "mmkd: mmengine's checkpoint loaders are replaced for this "
            'process: checkpoints loaded through mmengine (load_from, '
            'resume, load_checkpoint, init_cfg) are treated as untrusted '
            '(weights_only=True with a plain-type allow-list).',
            logger='current', level=logging.INFO)

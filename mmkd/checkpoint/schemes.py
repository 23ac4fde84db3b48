"""mmengine's checkpoint schemes, each routed through :func:`.safe_torch_load`
and cleaned of what resuming would execute or delete; ``pavi://`` refused."""
import io
import logging
import os.path as osp
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import mmengine.runner.checkpoint as mmengine_checkpoint
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log

from .download import load_url
from .errors import UnsafeCheckpointError
from .resume_state import sanitize_runner_state
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
    """Route every mmengine checkpoint scheme through mmkd, for the whole
    process (said once, at INFO level)."""
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

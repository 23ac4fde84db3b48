"""Loading checkpoints as untrusted input.

A checkpoint is a pickle: unpickling an arbitrary one can run arbitrary code.
Every checkpoint mmkd loads (teacher, pretrained student, resume) goes through
``torch.load(weights_only=True)``, which only rebuilds tensors, plain
containers and the globals allow-listed here: the types mmengine writes into
its training checkpoints (``HistoryBuffer`` in the message hub, numpy arrays,
scalars and dtypes). Nothing is switched off globally.

``HistoryBuffer`` pickles its statistics table as ``getattr(HistoryBuffer,
'mean')`` and so on; instead of allow-listing the builtin ``getattr`` (which
would reach any attribute of any allow-listed object), the unpickler gets a
``getattr`` that only returns those statistics methods.

:func:`register_safe_checkpoint_loaders` makes mmengine's own loaders (used by
``load_from``, ``--resume`` and ``load_checkpoint``) go through
:func:`safe_torch_load` for local files and URLs.
"""
import os
import os.path as osp
import pickle
from typing import Any, Callable, List, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allow-list of plain types."""


# HistoryBuffer fills its class-level table on first instantiation, so a fresh
# process may not have them yet.
_BUILTIN_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may call: a ``HistoryBuffer``
    statistics method (``mean``, ``min``, ...)."""
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed while loading a '
        'checkpoint (only HistoryBuffer statistics methods are).')


def _numpy_globals() -> List[Any]:
    core = getattr(np, '_core', None) or np.core  # numpy 2.x / 1.x
    names = []
    for prefix in ('numpy._core', 'numpy.core'):
        names += [(core.multiarray._reconstruct,
                   f'{prefix}.multiarray._reconstruct'),
                  (core.multiarray.scalar, f'{prefix}.multiarray.scalar')]
    dtype_classes = [type(np.dtype(t)) for t in (
        'bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
        'uint32', 'uint64', 'float16', 'float32', 'float64')]
    return names + [np.ndarray, np.dtype] + dtype_classes


def safe_globals() -> List[Any]:
    """The allow-list passed to ``torch.serialization.safe_globals``."""
    import _codecs
    return _numpy_globals() + [
        HistoryBuffer,
        _codecs.encode,  # numpy scalars pickle their bytes through it
        (_history_buffer_getattr, 'builtins.getattr'),
    ]


def safe_torch_load(file: Union[str, Any],
                    map_location: Optional[Union[str, Callable]] = 'cpu',
                    what: str = 'checkpoint') -> Any:
    """``torch.load(weights_only=True)`` with mmkd's allow-list.

    Args:
        file (str | file-like): A local path or an open binary file.
        map_location (str | callable, optional): As in ``torch.load``.
        what (str): What is loaded, for the error message (e.g.
            ``'teacher checkpoint (model.teacher_checkpoint)'``).

    Returns:
        Any: The unpickled checkpoint.

    Raises:
        UnsafeCheckpointError: The file holds a global outside the allow-list
            (nothing in it has been executed).
    """
    name = file if isinstance(file, str) else getattr(file, 'name', '<file>')
    if isinstance(file, str) and not osp.isfile(file):
        raise FileNotFoundError(f'{what}: no such file: {file}')
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(
                file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e)
        # torch wraps the unpickler's one-line reason in a long explanation
        for line in reason.splitlines():
            if 'WeightsUnpickler error' in line:
                reason = line.split('WeightsUnpickler error:')[-1].strip()
        raise UnsafeCheckpointError(
            f'Refusing to load {what} {name}: it holds Python objects '
            'outside the allow-list of plain types, and unpickling them '
            f'could run code. The unpickler said: {reason}\nIf you trust this '
            'file, re-save just its weights in a trusted environment, e.g. '
            "torch.save({'state_dict': ckpt['state_dict']}, 'clean.pth').") \
            from None


def _load_local(filename: str, map_location=None) -> Any:
    return safe_torch_load(
        osp.expanduser(filename), map_location, what='checkpoint')


def _load_url(filename: str, map_location=None) -> Any:
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    cache_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(cache_dir, exist_ok=True)
    cached = osp.join(cache_dir, osp.basename(filename.split('?')[0]))
    if rank == 0 and not osp.exists(cached):
        torch.hub.download_url_to_file(filename, cached, progress=True)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0 and not osp.exists(cached):
            torch.hub.download_url_to_file(filename, cached, progress=True)
    return safe_torch_load(cached, map_location, what=f'checkpoint {filename}')


def register_safe_checkpoint_loaders() -> None:
    """Route mmengine's local-file and http(s) checkpoint loading through
    :func:`safe_torch_load` (``load_from``, ``resume``, ``load_checkpoint``).
    """
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_local)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), force=True)(_load_url)

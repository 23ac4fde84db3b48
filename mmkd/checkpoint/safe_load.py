"""Loading one checkpoint file as untrusted input: :func:`safe_torch_load`.

A checkpoint is a pickle: unpickling an arbitrary one can run arbitrary code.

1. The file must be a PyTorch file (zip or legacy format); an HTML page, a
   truncated download or random bytes get an error that says so.
2. What loading it may cost is checked before anything in it is inflated,
   allocated or unpickled (:mod:`mmkd.checkpoint.bounds`): the zip layout
   (stored, non-overlapping members inside the file, a bounded number of
   them), every storage's declared size against the bytes the file holds
   for it, and a streamed scan of the pickle (nothing executed) for
   quadratic codecs, allocating calls and nesting too deep
   (:mod:`mmkd.checkpoint.pickle_scan`).
3. ``torch.load(weights_only=True)`` rebuilds tensors, plain containers and
   the globals allow-listed here: mmengine's ``HistoryBuffer`` (message hub),
   a ``getattr`` that only returns ``HistoryBuffer`` statistics methods, and
   stand-ins for numpy's arrays, scalars and dtypes that hold plain values
   until they are validated and rebuilt as numeric numpy values
   (:mod:`mmkd.checkpoint.safe_numpy`; object arrays are refused).

Nothing is switched off globally, and ``torch.load`` itself is not changed;
:mod:`mmkd.checkpoint.schemes` routes mmengine's loaders through this.
"""
import os
import os.path as osp
import pickle
from typing import IO, Any, Callable, List, Optional, Union

import torch
from mmengine.logging import HistoryBuffer

from .bounds import check_checkpoint
from .errors import (NEVER_SWITCH_OFF, CheckpointFormatError,
                     UnsafeCheckpointError)
from .safe_numpy import numpy_stub_globals, rebuild_numpy

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
    """Refuse a file that is not a torch zip or legacy file.

    Args:
        file (file-like): The checkpoint; its position is restored.
        what (str): What is loaded, for messages.
        name (str): The file's name, for messages.

    Raises:
        CheckpointFormatError: It is empty, an HTML page or something else.
    """
    start = file.tell()
    head = file.read(4)
    file.seek(start)
    if not head:
        raise CheckpointFormatError(
            f'{what}: {name} is empty (an interrupted download or save?). '
            'Give the path of a complete checkpoint.')
    if head == b'PK\x03\x04' or head.startswith(b'\x80\x02'):
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
            allow-list, a non-numeric numpy value, a quadratic codec or an
            allocating call, is nested too deeply, or its layout would cost
            more memory than its contents (compressed, oversized or
            overlapping members, too many members, storages whose declared
            size is not the size of their data). Nothing in it has been
            executed.
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
        check_checkpoint(file)
        with torch.serialization.safe_globals(safe_globals()):
            checkpoint = torch.load(
                file, map_location=map_location, weights_only=True)
        return rebuild_numpy(checkpoint)
    except UnsafeCheckpointError as e:
        reason = str(e).rstrip('.')
        raise UnsafeCheckpointError(
            f'Refusing to load {what} {name}: {reason}.\n{NEVER_SWITCH_OFF}'
        ) from None
    except CheckpointFormatError as e:
        reason = str(e).rstrip('.')
        raise CheckpointFormatError(
            f'{what}: {name} is not a readable PyTorch checkpoint (truncated '
            f'or damaged?): {reason}. Download or copy it again.') from None
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

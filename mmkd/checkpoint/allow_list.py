"""The globals a checkpoint may name in the loader process, besides torch's
own: stand-ins for numpy (:mod:`.safe_numpy`), for mmengine's
``HistoryBuffer`` and its statistics methods (the training process builds
the real ones), ``bytes()`` and narrowed ``bytearray`` and
``_codecs.encode``. The loader imports neither mmengine nor mmkd.
"""
import pickle
from typing import Any, List

from .safe_numpy import numpy_stub_globals

#: Statistics methods every HistoryBuffer has; a checkpoint may name others
#: that the training process has registered (checked there).
STATISTICS = frozenset({'min', 'max', 'current', 'mean'})
#: How pickle protocol 2 names latin-1, the one codec it writes bytes with.
_LATIN1 = frozenset({'latin1', 'latin-1', 'iso8859-1', 'iso-8859-1'})


def _refuse(call: str, allowed: str) -> None:
    raise pickle.UnpicklingError(f'{call:.120} is not allowed while loading '
                                 f'a checkpoint (only {allowed} is).')


class HistoryBufferStub:
    """Stands for ``HistoryBuffer()`` (as ``torch.save`` writes it, without
    arguments) and keeps its state."""

    state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> 'HistoryBufferStub':
        if args or kwargs:
            _refuse('HistoryBuffer(...) with arguments', 'HistoryBuffer()')
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


class StatisticStub:
    """What ``getattr(HistoryBuffer, name)`` gives in the loader."""

    def __init__(self, name: str) -> None:
        self.name = name


def _getattr(obj: Any, name: Any) -> StatisticStub:
    if obj is HistoryBufferStub and isinstance(name, str) and \
            name.isidentifier() and not name.startswith('_'):
        return StatisticStub(name)
    _refuse(f'getattr({obj!r:.60}, {name!r:.60})',
            'a HistoryBuffer statistics method')


def _bytes(*args: Any) -> bytes:
    if args:  # bytes(n) would allocate n bytes
        _refuse(f'bytes{args!r:.60}', 'bytes()')
    return b''


def _latin1_encode(text: Any, codec: Any = 'utf-8',
                   errors: Any = 'strict') -> bytes:
    # other codecs (punycode) cost quadratic time; any module may add one
    if type(text) is not str or codec not in _LATIN1 or errors != 'strict':
        _refuse(f'_codecs.encode(..., {codec!r:.60})', 'the latin1 codec')
    return text.encode('latin-1')


def _bytearray(*args: Any) -> bytearray:
    if not args or (len(args) == 1 and type(args[0]) is bytes):
        return bytearray(*args)
    if len(args) == 2 and type(args[0]) is str and args[1] in _LATIN1:
        return bytearray(args[0], 'latin-1')
    _refuse(f'bytearray(...) with something other than text or bytes '
            f'({args!r:.60})', 'bytearray of bytes or latin-1 text')


def restrict_torch_globals() -> None:
    """Narrow two of torch's own weights-only globals in this (loader)
    process; torch caches the table, so every later load uses it."""
    from torch._weights_only_unpickler import _get_allowed_globals
    table = _get_allowed_globals()
    table['_codecs.encode'] = _latin1_encode
    table['builtins.bytearray'] = _bytearray


def safe_globals() -> List[Any]:
    """The allow-list passed to ``torch.serialization.safe_globals``."""
    return numpy_stub_globals() + [
        (HistoryBufferStub, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_getattr, 'builtins.getattr'), (_bytes, 'builtins.bytes')]

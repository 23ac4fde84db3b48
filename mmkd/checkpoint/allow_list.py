"""The globals a checkpoint may name, as the loader process sees them
(``torch.load(weights_only=True)`` with :func:`safe_globals`).

Besides torch's own tensors and containers: stand-ins for numpy's arrays,
scalars and dtypes (:mod:`.safe_numpy`), for mmengine's ``HistoryBuffer``
(its state is handed back as plain data and the training process builds the
real one) and for the ``getattr`` that names a ``HistoryBuffer`` statistics
method; ``bytes()`` with no arguments (how pickle protocol 2 writes
``b''``). The loader imports neither mmengine nor anything of mmkd's but
this package's plain modules.
"""
import pickle
from typing import Any, List

from .safe_numpy import numpy_stub_globals

#: How a pickle names mmengine's message-hub buffer.
HISTORY_BUFFER = 'mmengine.logging.history_buffer.HistoryBuffer'
#: Statistics methods every HistoryBuffer has; a checkpoint may name others
#: that the training process has registered (checked there).
STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


class HistoryBufferStub:
    """Stands for ``HistoryBuffer()``; keeps the state it is given.
    ``torch.save`` writes it without arguments (its arguments would go
    through ``np.array``, which copies nested lists element by element)."""

    state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> 'HistoryBufferStub':
        if args or kwargs:
            raise pickle.UnpicklingError(
                'HistoryBuffer(...) with arguments is not allowed while '
                'loading a checkpoint (torch.save writes HistoryBuffer() '
                'and its state).')
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


class StatisticStub:
    """What ``getattr(HistoryBuffer, name)`` gives in the loader."""

    def __init__(self, name: str) -> None:
        self.name = name


def _history_buffer_getattr(obj: Any, name: Any) -> StatisticStub:
    """The only ``getattr`` a checkpoint may call: a ``HistoryBuffer``
    statistics method (``mean``, ``min``, ...)."""
    if obj is HistoryBufferStub and isinstance(name, str) and \
            name.isidentifier() and not name.startswith('_'):
        return StatisticStub(name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r:.60}, {name!r:.60}) is not allowed while loading a '
        'checkpoint (only HistoryBuffer statistics methods are).')


def _empty_bytes(*args: Any) -> bytes:
    """The only ``bytes(...)`` call a checkpoint may make: ``bytes()``."""
    if args:
        raise pickle.UnpicklingError(
            f'bytes{args!r:.60} is not allowed while loading a checkpoint '
            '(only bytes() is).')
    return b''


#: How pickle protocol 2 names latin-1, the one codec it writes bytes with.
_LATIN1 = frozenset({'latin1', 'latin-1', 'iso8859-1', 'iso-8859-1'})


def _latin1_encode(text: Any, codec: Any = 'utf-8',
                   errors: Any = 'strict') -> bytes:
    """``_codecs.encode`` as protocol 2 calls it for ``bytes``: latin-1
    only (other codecs, e.g. punycode, cost quadratic time, and any module
    may register one)."""
    if type(text) is not str or codec not in _LATIN1 or errors != 'strict':
        raise pickle.UnpicklingError(
            f'_codecs.encode(..., {codec!r:.60}) is not allowed while loading'
            ' a checkpoint: only the latin1 codec is.')
    return text.encode('latin-1')


def _bytearray(*args: Any) -> bytearray:
    """``bytearray`` as pickles write it: of bytes, or of latin-1 text;
    never of a size the pickle chooses."""
    if not args or (len(args) == 1 and type(args[0]) is bytes):
        return bytearray(*args)
    if len(args) == 2 and type(args[0]) is str and args[1] in _LATIN1:
        return bytearray(args[0], 'latin-1')
    raise pickle.UnpicklingError(
        f'bytearray(...) with something other than text or bytes '
        f'({args!r:.60}) is not allowed while loading a checkpoint.')


def restrict_torch_globals() -> None:
    """Replace, in this (loader) process, two of torch's own weights-only
    globals by the narrower ones above. torch caches its table, so this
    changes the table every later load uses."""
    from torch._weights_only_unpickler import _get_allowed_globals
    table = _get_allowed_globals()
    table['_codecs.encode'] = _latin1_encode
    table['builtins.bytearray'] = _bytearray


def safe_globals() -> List[Any]:
    """The allow-list passed to ``torch.serialization.safe_globals``."""
    return numpy_stub_globals() + [
        (HistoryBufferStub, HISTORY_BUFFER),
        (_history_buffer_getattr, 'builtins.getattr'),
        (_empty_bytes, 'builtins.bytes'),
    ]

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
    """Stands for ``HistoryBuffer()``; keeps the state it is given."""

    state: Any = None

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


def safe_globals() -> List[Any]:
    """The allow-list passed to ``torch.serialization.safe_globals``."""
    return numpy_stub_globals() + [
        (HistoryBufferStub, HISTORY_BUFFER),
        (_history_buffer_getattr, 'builtins.getattr'),
        (_empty_bytes, 'builtins.bytes'),
    ]

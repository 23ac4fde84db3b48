"""The values of the calls the loader recorded (:class:`.allow_list.Call`),
made in the training process from checked arguments: numeric numpy dtypes,
arrays and scalars (exactly as many bytes as the shape needs, byte order
kept), a ``HistoryBuffer`` from its state, its statistics methods."""
import math
import re
from typing import Any, NoReturn

import numpy as np
from mmengine.logging import HistoryBuffer

from .allow_list import STATISTICS
from .errors import UnsafeCheckpointError

#: numeric dtype codes (``dtype.str`` without its byte order)
_CODE = re.compile(r'^(b1|[iu][1248]|f[248]|c8|c16)$')


def _refuse(what: str, numpy: bool = True) -> NoReturn:
    raise UnsafeCheckpointError(f'{what:.200} ' + (
        'in a checkpoint: only numeric numpy arrays, scalars and dtypes are '
        'allowed (bool, int, uint, float and complex)' if numpy else
        'is not allowed'))


def make_call(kind: str, args: list, state: Any) -> Any:
    """The value of a recorded call.

    Args:
        kind (str): ``'HistoryBuffer'`` (state: its attributes),
            ``'statistic'`` (a method name), ``'dtype'`` (code, align, copy;
            state: version, byte order, ...), ``'scalar'`` (dtype, bytes)
            or ``'reconstruct'`` (state: version, shape, dtype, fortran,
            bytes).
        args (list): The call's arguments, built.
        state: Its state, built.

    Raises:
        UnsafeCheckpointError: Anything else.
    """
    if kind == 'HistoryBuffer':
        if type(state) is not dict or any(type(k) is not str for k in state):
            _refuse(f'a HistoryBuffer state {state!r:.60}', False)
        buffer = HistoryBuffer.__new__(HistoryBuffer)
        buffer.__setstate__(dict(state))
        return buffer
    if kind == 'statistic':
        if args[0] not in STATISTICS | set(HistoryBuffer._statistics_methods):
            _refuse(f'getattr(HistoryBuffer, {args[0]!r:.60})', False)
        return getattr(HistoryBuffer, args[0])
    if kind == 'dtype':
        if not (args and isinstance(args[0], str) and _CODE.match(args[0])):
            _refuse(f'numpy dtype {args[:1]!r}')
        order = state[1] if type(state) is tuple and len(state) > 1 else '='
        return np.dtype(args[0]).newbyteorder(
            order if order in ('<', '>') else '=')
    if kind == 'scalar' and len(args) == 2:
        dtype, shape, data, fortran = args[0], (), args[1], False
    elif kind == 'reconstruct' and type(state) is tuple and len(state) == 5:
        _, shape, dtype, fortran, data = state
    else:
        _refuse(f'numpy.{kind}{tuple(args)!r:.100} (state {state!r:.100})')
    if not isinstance(dtype, np.dtype) or type(data) is not bytes or \
            type(shape) is not tuple or len(shape) > 64 or any(
                type(n) is not int or n < 0 for n in shape):
        _refuse(f'numpy value of dtype {dtype!r:.60} and shape '
                f'{shape!r:.60}')
    if len(data) != math.prod(shape) * dtype.itemsize:
        _refuse(f'numpy data that does not match its shape {shape} and '
                f'dtype {dtype}')
    order = 'F' if fortran else 'C'
    value = np.frombuffer(data, dtype=dtype)
    return value[0].copy() if kind == 'scalar' else \
        value.reshape(shape, order=order).copy(order=order)

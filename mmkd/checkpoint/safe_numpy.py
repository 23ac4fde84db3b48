"""Numpy values in untrusted checkpoints, rebuilt without numpy's unpickling.

mmengine writes numpy arrays, scalars and dtypes into its training
checkpoints (the message hub's ``HistoryBuffer``, ``meta``). Allow-listing
numpy's own unpickling functions (``numpy.ndarray``, ``_reconstruct``,
``scalar``, ``numpy.dtype``) is not safe: the unpickler may *call* any
allow-listed global with any arguments, and ``numpy.ndarray((1,), 'O',
raw_bytes)`` builds an object array whose element is a pointer taken from the
attacker's bytes (loading such a file crashes the process or worse).

Instead, those names are mapped to the small stand-in classes below. The
unpickler only ever creates stand-ins, which hold plain Python values and do
nothing. After unpickling, :func:`rebuild_numpy` replaces each stand-in by a
real numpy value, built from a validated description:

- dtypes: one of :data:`ALLOWED_DTYPES` (bool, integers, floats, complex), a
  byte order of ``<``, ``>``, ``|`` or ``=``, and no fields, names or
  sub-arrays; object, string, void and structured dtypes are refused;
- arrays: a shape of non-negative ints, a dtype as above, and a ``bytes``
  buffer whose length is exactly ``prod(shape) * itemsize``;
- scalars: a dtype as above and exactly ``itemsize`` bytes.

Anything else raises :class:`pickle.UnpicklingError`; a checkpoint nested
too deeply to walk raises :class:`~mmkd.checkpoint.UnsafeCheckpointError`.
"""
import math
import pickle
import sys
from typing import Any, Dict, List, Tuple

import numpy as np

from . import limits
from .errors import TOO_DEEP, UnsafeCheckpointError

#: The dtype codes a checkpoint may use (numpy pickles dtypes by these).
ALLOWED_DTYPES = frozenset({
    'b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8',
    'c8', 'c16'
})


def _refuse(what: str) -> None:
    raise pickle.UnpicklingError(
        f'{what}: only numeric numpy arrays, scalars and dtypes are allowed '
        f'(dtype codes {sorted(ALLOWED_DTYPES)}).')


class NdarrayToken:
    """Stands for the class ``numpy.ndarray``, which a pickle names as the
    first argument of ``_reconstruct``. It cannot be called."""

    def __new__(cls, *args, **kwargs):
        _refuse('numpy.ndarray(...) called by a checkpoint')


class DtypeStub:
    """Stands for ``numpy.dtype(code, align, copy)`` and its state."""

    def __init__(self, code: Any = None, align: Any = False,
                 copy: Any = True) -> None:
        if not isinstance(code, str) or code not in ALLOWED_DTYPES:
            _refuse(f'numpy dtype {code!r} in a checkpoint')
        self.code = code
        self.byteorder = '='

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields,
        # elsize, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) in (8, 9)
                and state[0] == 3 and state[1] in ('<', '>', '|', '=')
                and state[2] is None and state[3] is None
                and state[4] is None):
            _refuse(f'numpy dtype state {state!r:.200} in a checkpoint')
        self.byteorder = state[1]

    def build(self) -> np.dtype:
        dtype = np.dtype(self.code)
        if self.byteorder in ('<', '>'):
            dtype = dtype.newbyteorder(self.byteorder)
        return dtype


class ArrayStub:
    """Stands for ``_reconstruct(numpy.ndarray, shape, typecode)`` followed
    by ``ndarray.__setstate__((version, shape, dtype, is_fortran, data))``.
    """

    def __init__(self, subtype: Any = None, shape: Any = None,
                 typecode: Any = None) -> None:
        if subtype is not NdarrayToken:
            _refuse(f'_reconstruct({subtype!r:.100}, ...) in a checkpoint')
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def build(self) -> np.ndarray:
        state = self.state
        if not (isinstance(state, tuple) and len(state) == 5
                and isinstance(state[2], DtypeStub)):
            _refuse(f'numpy array state {state!r:.200} in a checkpoint')
        _, shape, dtype_stub, is_fortran, data = state
        if not (isinstance(shape, tuple) and all(
                type(n) is int and n >= 0 for n in shape)):
            _refuse(f'numpy array shape {shape!r:.100} in a checkpoint')
        dtype = dtype_stub.build()
        if not isinstance(data, bytes) or \
                len(data) != math.prod(shape) * dtype.itemsize:
            _refuse('numpy array data that does not match its shape '
                    f'{shape} and dtype {dtype} in a checkpoint')
        order = 'F' if is_fortran else 'C'
        return np.frombuffer(data, dtype=dtype).reshape(
            shape, order=order).copy(order=order)


class ScalarStub:
    """Stands for ``numpy.core.multiarray.scalar(dtype, data)``."""

    def __init__(self, dtype: Any = None, data: Any = None) -> None:
        self.dtype_stub, self.data = dtype, data

    def build(self) -> np.generic:
        if not isinstance(self.dtype_stub, DtypeStub):
            _refuse(f'numpy scalar of dtype {self.dtype_stub!r:.100} in a '
                    'checkpoint')
        dtype = self.dtype_stub.build()
        if not isinstance(self.data, bytes) or \
                len(self.data) != dtype.itemsize:
            _refuse(f'numpy scalar data that does not match dtype {dtype} '
                    'in a checkpoint')
        return np.frombuffer(self.data, dtype=dtype)[0].copy()


STUBS = (DtypeStub, ArrayStub, ScalarStub)


def numpy_stub_globals() -> List[Tuple[Any, str]]:
    """``(stand-in, pickled name)`` pairs for
    ``torch.serialization.safe_globals``, for numpy 1.x and 2.x names."""
    pairs = [(NdarrayToken, 'numpy.ndarray'), (DtypeStub, 'numpy.dtype')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(ArrayStub, f'{module}._reconstruct'),
                  (ScalarStub, f'{module}.scalar')]
    return pairs


def rebuild_numpy(obj: Any) -> Any:
    """Replace every numpy stand-in in an unpickled checkpoint by the real
    numpy value.

    Walks dicts, lists, tuples, sets and the ``__dict__`` of other objects
    (``HistoryBuffer``); dicts, lists and attributes are updated in place,
    tuples and sets rebuilt. Each object is visited once (shared and cyclic
    references keep their identity). A container is one level; the walk
    refuses to go deeper than :data:`~mmkd.checkpoint.limits.MAX_NESTING`
    levels (the pickle scan refuses structures written that deep; this
    catches ones linked up through the pickle's memo afterwards).

    Args:
        obj: What ``torch.load`` returned.

    Returns:
        The object with stand-ins replaced.

    Raises:
        pickle.UnpicklingError: A stand-in does not describe a numeric numpy
            value.
        UnsafeCheckpointError: The object is nested deeper than the limit.
    """
    import torch
    done: Dict[int, Any] = {}

    def convert(item: Any, depth: int) -> Any:
        if isinstance(item, (str, bytes, int, float, complex, torch.Tensor,
                             type)) or item is None or callable(item):
            return item
        if id(item) in done:
            return done[id(item)]
        if depth > limits.MAX_NESTING:
            raise UnsafeCheckpointError(
                TOO_DEEP.format(limit=limits.MAX_NESTING))
        inner = depth + 1
        if isinstance(item, STUBS):
            done[id(item)] = item.build()
        elif isinstance(item, dict):
            done[id(item)] = item
            for key, value in list(item.items()):
                item[key] = convert(value, inner)
        elif isinstance(item, list):
            done[id(item)] = item
            item[:] = [convert(value, inner) for value in item]
        elif isinstance(item, (tuple, set, frozenset)):
            done[id(item)] = item
            values = [convert(value, inner) for value in item]
            if any(a is not b for a, b in zip(values, item)):
                done[id(item)] = type(item)(values)
        elif hasattr(item, '__dict__'):
            done[id(item)] = item
            attrs = vars(item)
            for key, value in list(attrs.items()):
                attrs[key] = convert(value, inner)
        else:
            done[id(item)] = item
        return done[id(item)]

    try:
        return convert(obj, 1)
    except RecursionError:
        raise UnsafeCheckpointError(
            "it is nested too deeply to walk within Python's recursion limit "
            f'of {sys.getrecursionlimit()} frames') from None

"""Numpy values in untrusted checkpoints, without numpy's unpickling.

Allow-listing numpy's own unpickling functions is not safe even in the
loader process: ``numpy.ndarray((1,), 'O', raw_bytes)`` builds an object
array whose element is a pointer from the attacker's bytes. So in the loader
those names are stand-ins that only hold plain values (:func:`describe`
sends them), and the training process builds numeric dtypes, scalars and
arrays from them (``build_*``), checking dtype, shape and data length.
"""
import math
import pickle
import re
from typing import Any, List, Tuple

import numpy as np

from .wire import raw

#: The dtype codes a checkpoint may use (numpy pickles dtypes by these).
ALLOWED_DTYPES = frozenset({
    'b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8',
    'c8', 'c16'
})
_DTYPE_STR = re.compile(r'^[<>|=]([biufc]\d{1,2})$')


def _refuse(what: str) -> None:
    raise pickle.UnpicklingError(
        f'{what}: only numeric numpy arrays, scalars and dtypes are allowed '
        f'(dtype codes {sorted(ALLOWED_DTYPES)}).')


class NdarrayToken:
    """Stands for ``numpy.ndarray`` as ``_reconstruct``'s first argument;
    it cannot be called."""

    def __new__(cls, *args, **kwargs):
        _refuse('numpy.ndarray(...) called by a checkpoint')


class DtypeStub:
    """Stands for ``numpy.dtype(code, align, copy)`` and its state."""

    def __init__(self, code: Any = None, align: Any = False,
                 copy: Any = True) -> None:
        if not isinstance(code, str) or code not in ALLOWED_DTYPES:
            _refuse(f'numpy dtype {code!r:.100} in a checkpoint')
        self.code, self.byteorder = code, '='

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, ...)
        if not (isinstance(state, tuple) and len(state) in (8, 9)
                and state[0] == 3 and state[1] in ('<', '>', '|', '=')
                and state[2:5] == (None, None, None)):
            _refuse(f'numpy dtype state {state!r:.200} in a checkpoint')
        self.byteorder = state[1]

    def dtype_str(self) -> str:
        dtype = np.dtype(self.code)
        if self.byteorder in ('<', '>'):
            dtype = dtype.newbyteorder(self.byteorder)
        return dtype.str


class ArrayStub:
    """Stands for ``_reconstruct(numpy.ndarray, shape, typecode)`` and
    ``ndarray.__setstate__((version, shape, dtype, is_fortran, data))``."""

    def __init__(self, subtype: Any = None, shape: Any = None,
                 typecode: Any = None) -> None:
        if subtype is not NdarrayToken:
            _refuse(f'_reconstruct({subtype!r:.100}, ...) in a checkpoint')
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class ScalarStub:
    """Stands for ``numpy.core.multiarray.scalar(dtype, data)``."""

    def __init__(self, dtype: Any = None, data: Any = None) -> None:
        self.dtype_stub, self.data = dtype, data


STUBS = (DtypeStub, ArrayStub, ScalarStub)


def numpy_stub_globals() -> List[Tuple[Any, str]]:
    """``(stand-in, pickled name)`` pairs for numpy 1.x and 2.x names."""
    pairs = [(NdarrayToken, 'numpy.ndarray'), (DtypeStub, 'numpy.dtype')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(ArrayStub, f'{module}._reconstruct'),
                  (ScalarStub, f'{module}.scalar')]
    return pairs


def describe(stub: Any) -> list:
    """A stand-in as tagged data (:mod:`.wire`): ``['nd', dtype]``,
    ``['ns', dtype, data]`` or ``['na', dtype, fortran, shape, data]``."""
    if type(stub) is DtypeStub:
        return ['nd', stub.dtype_str()]
    if type(stub) is ScalarStub:
        if type(stub.dtype_stub) is DtypeStub and type(stub.data) is bytes:
            return ['ns', stub.dtype_stub.dtype_str(), raw(stub.data)]
        _refuse(f'numpy scalar ({stub.dtype_stub!r:.100}, '
                f'{stub.data!r:.100}) in a checkpoint')
    state = stub.state
    if not (type(state) is tuple and len(state) == 5
            and type(state[1]) is tuple
            and all(type(n) is int for n in state[1])
            and type(state[2]) is DtypeStub and type(state[4]) is bytes):
        _refuse(f'numpy array state {state!r:.200} in a checkpoint')
    return ['na', state[2].dtype_str(), bool(state[3]), list(state[1]),
            raw(state[4])]


def build_dtype(code: Any) -> np.dtype:
    """A numeric numpy dtype from its ``dtype.str`` (e.g. ``'>f4'``)."""
    match = _DTYPE_STR.match(code) if isinstance(code, str) else None
    if match is None or match.group(1) not in ALLOWED_DTYPES:
        _refuse(f'numpy dtype {code!r:.100} in a checkpoint')
    return np.dtype(code)


def build_array(code: Any, fortran: bool, shape: Any,
                data: bytes) -> np.ndarray:
    """A numeric array of ``shape`` (ints >= 0) from exactly
    ``prod(shape) * itemsize`` bytes, byte order kept."""
    dtype = build_dtype(code)
    if not (isinstance(shape, list) and len(shape) <= 64 and all(
            type(n) is int and n >= 0 for n in shape)):
        _refuse(f'numpy array shape {shape!r:.100} in a checkpoint')
    if len(data) != math.prod(shape) * dtype.itemsize:
        _refuse('numpy array data that does not match its shape '
                f'{shape} and dtype {dtype} in a checkpoint')
    order = 'F' if fortran else 'C'
    return np.frombuffer(data, dtype=dtype).reshape(
        shape, order=order).copy(order=order)


def build_scalar(code: Any, data: bytes) -> np.generic:
    """A numeric numpy scalar from exactly ``itemsize`` bytes."""
    dtype = build_dtype(code)
    if len(data) != dtype.itemsize:
        _refuse(f'numpy scalar data that does not match dtype {dtype} in a '
                'checkpoint')
    return np.frombuffer(data, dtype=dtype)[0].copy()

"""Numpy values in untrusted checkpoints, without numpy's unpickling.

mmengine writes numpy arrays, scalars and dtypes into its training
checkpoints (the message hub's ``HistoryBuffer``, ``meta``). Allow-listing
numpy's own unpickling functions is not safe even in the loader process:
``numpy.ndarray((1,), 'O', raw_bytes)`` builds an object array whose element
is a pointer taken from the attacker's bytes. So in the loader those names
are mapped to the stand-ins below, which only hold plain values; the loader
sends a validated description (:func:`describe`) and the training process
builds the value from it (:func:`build_dtype`, :func:`build_array`,
:func:`build_scalar`), checking it again:

- dtypes: ``dtype.str`` of bool, integers, floats or complex (byte order
  kept), no fields or sub-arrays; object, string, void, datetime and
  structured dtypes are refused;
- arrays: a shape of non-negative ints and exactly ``prod(shape) *
  itemsize`` bytes; scalars: exactly ``itemsize`` bytes.
"""
import math
import pickle
import re
from typing import Any, List, Tuple

import numpy as np

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
    """Stands for the class ``numpy.ndarray``, which a pickle names as the
    first argument of ``_reconstruct``. It cannot be called."""

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
        # (version, byteorder, subarray, names, fields, elsize, alignment,
        # flags[, metadata])
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


class ScalarStub:
    """Stands for ``numpy.core.multiarray.scalar(dtype, data)``."""

    def __init__(self, dtype: Any = None, data: Any = None) -> None:
        self.dtype_stub, self.data = dtype, data


STUBS = (DtypeStub, ArrayStub, ScalarStub)


def numpy_stub_globals() -> List[Tuple[Any, str]]:
    """``(stand-in, pickled name)`` pairs for
    ``torch.serialization.safe_globals``, for numpy 1.x and 2.x names."""
    pairs = [(NdarrayToken, 'numpy.ndarray'), (DtypeStub, 'numpy.dtype')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        pairs += [(ArrayStub, f'{module}._reconstruct'),
                  (ScalarStub, f'{module}.scalar')]
    return pairs


def describe(stub: Any) -> Tuple:
    """What the loader sends for a stand-in (checked here and again by the
    ``build_*`` functions).

    Returns:
        tuple: ``('dtype', str)``, ``('scalar', str, bytes)`` or
        ``('array', str, fortran, shape, bytes)``.
    """
    if isinstance(stub, DtypeStub):
        return ('dtype', stub.build().str)
    if isinstance(stub, ScalarStub):
        if not isinstance(stub.dtype_stub, DtypeStub):
            _refuse(f'numpy scalar of dtype {stub.dtype_stub!r:.100} in a '
                    'checkpoint')
        code = stub.dtype_stub.build().str
        build_scalar(code, stub.data)
        return ('scalar', code, stub.data)
    state = stub.state
    if not (isinstance(state, tuple) and len(state) == 5
            and isinstance(state[2], DtypeStub)):
        _refuse(f'numpy array state {state!r:.200} in a checkpoint')
    _, shape, dtype_stub, is_fortran, data = state
    dtype = dtype_stub.build().str
    build_array(dtype, bool(is_fortran), shape, data)
    return ('array', dtype, bool(is_fortran), shape, data)


def build_dtype(code: str) -> np.dtype:
    """A numeric numpy dtype from its ``dtype.str`` (e.g. ``'>f4'``).

    Raises:
        pickle.UnpicklingError: Anything else.
    """
    match = _DTYPE_STR.match(code) if isinstance(code, str) else None
    if match is None or match.group(1) not in ALLOWED_DTYPES:
        _refuse(f'numpy dtype {code!r:.100} in a checkpoint')
    return np.dtype(code)


def build_array(code: str, fortran: bool, shape: Any,
                data: bytes) -> np.ndarray:
    """A numeric array of ``shape`` (ints >= 0) from exactly
    ``prod(shape) * itemsize`` bytes, byte order kept."""
    dtype = build_dtype(code)
    if not (isinstance(shape, tuple) and all(
            type(n) is int and n >= 0 for n in shape)):
        _refuse(f'numpy array shape {shape!r:.100} in a checkpoint')
    if not isinstance(data, bytes) or \
            len(data) != math.prod(shape) * dtype.itemsize:
        _refuse('numpy array data that does not match its shape '
                f'{shape} and dtype {dtype} in a checkpoint')
    order = 'F' if fortran else 'C'
    return np.frombuffer(data, dtype=dtype).reshape(
        shape, order=order).copy(order=order)


def build_scalar(code: str, data: bytes) -> np.generic:
    """A numeric numpy scalar from exactly ``itemsize`` bytes."""
    dtype = build_dtype(code)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        _refuse(f'numpy scalar data that does not match dtype {dtype} in a '
                'checkpoint')
    return np.frombuffer(data, dtype=dtype)[0].copy()

"""Write what ``torch.load`` returned in the loader process as plain tagged
data (:mod:`.wire`), storages' bytes to the data channel.

Only exact plain types are written; anything else (an object of another
class, a quantized, meta or nested tensor, a cycle, a sparse tensor that
fails torch's validation, nesting deeper than the limit) is refused with
:class:`Refused`. Each shared object is written once and referred to
afterwards, so a DAG costs its size here; the training process bounds what
it would cost unfolded.
"""
import os
from collections import OrderedDict
from typing import Any, Dict, List

import torch

from . import wire
from .allow_list import HistoryBufferStub, StatisticStub
from .errors import TOO_DEEP
from .safe_numpy import STUBS, describe

_SIMPLE = {
    list: wire.LIST, tuple: wire.TUPLE, torch.Size: wire.SIZE,
    set: wire.SET, frozenset: wire.FROZENSET,
}
#: sparse layout -> its component tensors
_SPARSE = {
    torch.sparse_coo: lambda t: [t._indices(), t._values()],
    torch.sparse_csr: lambda t: [t.crow_indices(), t.col_indices(),
                                 t.values()],
    torch.sparse_bsr: lambda t: [t.crow_indices(), t.col_indices(),
                                 t.values()],
    torch.sparse_csc: lambda t: [t.ccol_indices(), t.row_indices(),
                                 t.values()],
    torch.sparse_bsc: lambda t: [t.ccol_indices(), t.row_indices(),
                                 t.values()],
}


class Refused(Exception):
    """The loaded object cannot be handed back (the message says why)."""


class Encoder:
    """Writes one loaded checkpoint.

    Args:
        data_fd (int): The data channel (storages' bytes).
        locations (dict): ``storage._cdata`` -> the location torch.load
            read for it (``'cpu'``, ``'cuda:0'``).
        max_nesting (int): Containers inside containers allowed.
    """

    def __init__(self, data_fd: int, locations: Dict[int, str],
                 max_nesting: int) -> None:
        self.out = bytearray()
        self.data_fd, self.data_end = data_fd, 0
        self.locations, self.max_nesting = locations, max_nesting
        self.count = 0  # values pushed so far
        self.index: Dict[int, int] = {}  # id -> value index of shared ones
        self.open: set = set()  # ids being written (a cycle if met again)
        self.storages: Dict[int, int] = {}  # storage _cdata -> index
        self.keep: List[Any] = []

    def push(self, op: bytes, payload: bytes = b'') -> None:
        self.out += op + payload
        self.count += 1

    def value(self, obj: Any, depth: int = 1) -> None:
        """Write ``obj`` (``depth``: its level of nesting)."""
        kind = type(obj)
        if obj is None or kind is bool:
            self.push({None: wire.NONE, True: wire.TRUE,
                       False: wire.FALSE}[obj])
        elif kind is int:
            raw = obj.to_bytes((obj.bit_length() + 8) // 8, 'little',
                               signed=True)
            self.push(wire.INT, wire.varint(len(raw)) + raw)
        elif kind is float:
            self.push(wire.FLOAT, wire.FLOAT_FORMAT.pack(obj))
        elif kind is complex:
            self.push(wire.COMPLEX,
                      wire.COMPLEX_FORMAT.pack(obj.real, obj.imag))
        elif kind is str:
            self.push(wire.STR, wire.text(obj))
        elif kind in (bytes, bytearray):
            op = wire.BYTES if kind is bytes else wire.BYTEARRAY
            self.push(op, wire.varint(len(obj)) + bytes(obj))
        elif kind is torch.dtype:
            self.push(wire.DTYPE, wire.text(str(obj)))
        elif kind is torch.device:
            self.push(wire.DEVICE, wire.text(str(obj)))
        elif id(obj) in self.index:
            self.push(wire.REF, wire.varint(self.index[id(obj)]))
        elif id(obj) in self.open:
            raise Refused('it refers to itself (a container inside itself): '
                          'a cycle cannot be handed back')
        else:
            if depth > self.max_nesting:
                raise Refused(TOO_DEEP.format(limit=self.max_nesting))
            self.open.add(id(obj))
            self._shared(obj, kind, depth + 1)
            self.open.discard(id(obj))
            self.index[id(obj)] = self.count - 1

    def _shared(self, obj: Any, kind: type, inner: int) -> None:
        """Write an object that may be referred to again."""
        if kind in _SIMPLE:
            for item in obj:
                self.value(item, inner)
            self.push(_SIMPLE[kind], wire.varint(len(obj)))
        elif kind in (dict, OrderedDict):
            for key, item in obj.items():
                self.value(key, inner)
                self.value(item, inner)
            if kind is dict:
                self.push(wire.DICT, wire.varint(len(obj)))
            else:
                self.value(vars(obj) or None, inner)
                self.push(wire.ORDERED_DICT, wire.varint(len(obj)))
        elif kind is StatisticStub:
            self.push(wire.METHOD, wire.text(obj.name))
        elif kind in STUBS:
            self._numpy(describe(obj))
        elif kind is HistoryBufferStub:
            self.value(obj.state, inner)
            self.push(wire.HISTORY_BUFFER)
        elif kind in (torch.Tensor, torch.nn.Parameter):
            self._tensor(obj, inner)
        elif kind in (torch.UntypedStorage, torch.TypedStorage):
            typed = kind is torch.TypedStorage
            storage = obj._untyped_storage if typed else obj
            dtype = obj.dtype if typed else torch.uint8
            flags = wire.TYPED_STORAGE if typed else wire.STORAGE_VALUE
            self.push(wire.NONE)
            self._write_tensor(storage, dtype, 0, [], [], flags)
        else:
            raise Refused(
                f'it holds an object of type {kind.__module__}.'
                f'{kind.__qualname__}, which mmkd does not hand back from '
                'the loader process (tensors, containers, numbers, strings, '
                'numeric numpy values and HistoryBuffer are)')

    def _tensor(self, t: torch.Tensor, inner: int) -> None:
        if t.layout in _SPARSE:
            self._sparse(t, inner)
            return
        if t.layout != torch.strided or t.is_quantized or t.is_meta or \
                t.is_nested or t.device.type != 'cpu':
            raise Refused(f'it holds a {t.layout} {t.dtype} tensor on '
                          f'{t.device} (quantized: {t.is_quantized}), which '
                          'mmkd does not load; save a dense copy instead')
        self.value(vars(t) or None, inner)
        flags = (wire.REQUIRES_GRAD if t.requires_grad else 0) | \
            (wire.PARAMETER if type(t) is torch.nn.Parameter else 0)
        self._write_tensor(t.untyped_storage(), t.dtype, t.storage_offset(),
                           list(t.shape), list(t.stride()), flags)

    def _write_tensor(self, storage: torch.UntypedStorage,
                      dtype: torch.dtype, offset: int, sizes: List[int],
                      strides: List[int], flags: int) -> None:
        index = self._storage(storage)
        self.out += wire.TENSOR + wire.varint(index) + \
            wire.text(str(dtype)) + wire.varint(offset) + \
            wire.varint(len(sizes)) + b''.join(map(wire.varint, sizes)) + \
            b''.join(map(wire.varint, strides)) + bytes([flags])
        self.count += 1  # pops the attributes (or None), pushes the tensor

    def _storage(self, storage: torch.UntypedStorage) -> int:
        """Write a storage's bytes once; its index."""
        key = storage._cdata
        if key not in self.storages:
            nbytes = storage.nbytes()
            start = -self.data_end % wire.ALIGN + self.data_end
            view = memoryview(torch.empty(0, dtype=torch.uint8).set_(
                storage).numpy()) if nbytes else memoryview(b'')
            done = 0
            while done < nbytes:
                done += os.pwrite(self.data_fd, view[done:], start + done)
            self.data_end = start + nbytes
            self.storages[key] = len(self.storages)
            self.out += wire.STORAGE + wire.varint(start) + \
                wire.varint(nbytes) + wire.text(
                    self.locations.get(key, 'cpu'))
        return self.storages[key]

    def _sparse(self, t: torch.Tensor, inner: int) -> None:
        parts = _SPARSE[t.layout](t)
        self.keep += parts  # written by id: keep the ids unique
        try:  # torch 2.13 does not check a loaded sparse tensor by default
            if t.layout == torch.sparse_coo:
                torch._validate_sparse_coo_tensor_args(
                    parts[0], parts[1], t.shape, t.is_coalesced())
            else:
                torch._validate_sparse_compressed_tensor_args(
                    *parts, t.shape, t.layout)
        except RuntimeError as e:
            raise Refused(f'it holds a {t.layout} tensor of size '
                          f'{list(t.shape)} that is not valid: '
                          f'{" ".join(str(e).split())[:300]}') from None
        for part in parts:
            self.value(part, inner)
        coalesced = t.layout == torch.sparse_coo and t.is_coalesced()
        self.push(wire.SPARSE, wire.text(str(t.layout)) +
                  wire.varint(t.dim()) +
                  b''.join(map(wire.varint, t.shape)) +
                  bytes([coalesced]) + wire.varint(len(parts)))

    def _numpy(self, description: tuple) -> None:
        kind, code = description[:2]
        if kind == 'dtype':
            self.push(wire.NP_DTYPE, wire.text(code))
        elif kind == 'scalar':
            data = description[2]
            self.push(wire.NP_SCALAR,
                      wire.text(code) + wire.varint(len(data)) + data)
        else:
            _, _, fortran, shape, data = description
            self.push(wire.NP_ARRAY, wire.text(code) + bytes([fortran]) +
                      wire.varint(len(shape)) +
                      b''.join(map(wire.varint, shape)) +
                      wire.varint(len(data)) + data)

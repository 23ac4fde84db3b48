"""Write what ``torch.load`` returned in the loader process as tagged plain
data (:mod:`.wire`), storages' bytes to the data channel.

Only exact plain types are written; anything else (another class, a
quantized, meta or nested tensor, a cycle, nesting deeper than the limit)
is refused with :class:`Refused`. A shared object is written once and then
referred to (``['r', index]``): the training process bounds its unfolding.
"""
import os
from collections import OrderedDict
from typing import Any, Dict, List

import torch

from . import wire
from .allow_list import HistoryBufferStub, StatisticStub
from .errors import TOO_DEEP
from .safe_numpy import STUBS, describe

_TAGS = {kind: tag for tag, kind in wire.CONTAINERS.items()}
_ATOMS = (type(None), bool, float, str)
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
        self.data_fd, self.locations = data_fd, locations
        self.max_nesting = max_nesting
        self.storages: Dict[int, int] = {}  # storage _cdata -> index
        self.table: List[list] = []  # [offset, nbytes, location]
        self.pending: List[memoryview] = []  # bytes not yet written
        self.end = self.written = 0
        self.index: Dict[int, int] = {}  # id -> index of a tagged value
        self.count = 0  # tagged values written so far
        self.open: set = set()  # ids being written: a cycle if met again
        self.keep: List[Any] = []  # written by id: keep the ids unique

    def result(self, obj: Any) -> dict:
        """The whole result for ``obj``."""
        value = self.value(obj, 1)
        self.flush()
        return {'storages': self.table, 'value': value}

    def tagged(self, obj: Any, value: list) -> list:
        if obj is not None:
            self.index[id(obj)] = self.count
            self.keep.append(obj)
        self.count += 1
        return value

    def value(self, obj: Any, depth: int) -> Any:
        """``obj`` as tagged data (``depth``: its level of nesting)."""
        kind = type(obj)
        if kind in _ATOMS:
            return obj
        if kind is int:
            return obj if -2**63 < obj < 2**63 else \
                self.tagged(None, ['i', hex(obj)])
        if kind is complex:
            return self.tagged(None, ['c', obj.real, obj.imag])
        if kind in (bytes, bytearray):
            return self.tagged(None, ['b' if kind is bytes else 'a',
                                      wire.raw(obj)])
        if kind in (torch.dtype, torch.device):
            return self.tagged(None, ['p' if kind is torch.dtype else 'v',
                                      str(obj)])
        if id(obj) in self.index:
            return ['r', self.index[id(obj)]]
        if id(obj) in self.open:
            raise Refused('it refers to itself (a container inside itself): '
                          'a cycle cannot be handed back')
        if depth > self.max_nesting:
            raise Refused(TOO_DEEP.format(limit=self.max_nesting))
        self.open.add(id(obj))
        value = self.tagged(obj, self.shared(obj, kind, depth + 1))
        self.open.discard(id(obj))
        return value

    def shared(self, obj: Any, kind: type, inner: int) -> list:
        """An object that may be referred to again."""
        if kind in _TAGS:
            return [_TAGS[kind]] + [self.value(i, inner) for i in obj]
        if kind in (dict, OrderedDict):
            head = ['d'] if kind is dict else \
                ['o', self.value(vars(obj) or None, inner)]
            for key, item in obj.items():
                head += [self.value(key, inner), self.value(item, inner)]
            return head
        if kind is StatisticStub:
            return ['h', obj.name]
        if kind is HistoryBufferStub:
            return ['H', self.value(obj.state, inner)]
        if kind in STUBS:
            return describe(obj)
        if kind in (torch.Tensor, torch.nn.Parameter):
            return self.tensor(obj, inner)
        if kind in (torch.UntypedStorage, torch.TypedStorage):
            typed = kind is torch.TypedStorage
            return ['g', self.storage(obj._untyped_storage if typed else obj),
                    str(obj.dtype) if typed else None]
        raise Refused(
            f'it holds an object of type {kind.__module__}.'
            f'{kind.__qualname__}, which mmkd does not hand back from the '
            'loader process (tensors, containers, numbers, strings, numeric '
            'numpy values and HistoryBuffer are)')

    def tensor(self, t: torch.Tensor, inner: int) -> list:
        if t.layout in _SPARSE:
            coalesced = t.layout == torch.sparse_coo and t.is_coalesced()
            return ['y', str(t.layout), list(t.shape), coalesced] + [
                self.value(p, inner) for p in _SPARSE[t.layout](t)]
        if t.layout != torch.strided or t.is_quantized or t.is_meta or \
                t.is_nested or t.device.type != 'cpu':
            raise Refused(f'it holds a {t.layout} {t.dtype} tensor on '
                          f'{t.device} (quantized: {t.is_quantized}), which '
                          'mmkd does not load; save a dense copy instead')
        flags = (wire.REQUIRES_GRAD if t.requires_grad else 0) | \
            (wire.PARAMETER if type(t) is torch.nn.Parameter else 0)
        return ['x', self.value(vars(t) or None, inner),
                self.storage(t.untyped_storage()), str(t.dtype),
                t.storage_offset(), list(t.shape), list(t.stride()), flags]

    def storage(self, storage: torch.UntypedStorage) -> int:
        """The index of a storage, its bytes queued once."""
        key = storage._cdata
        if key not in self.storages:
            nbytes = storage.nbytes()
            start = -self.end % wire.ALIGN + self.end if nbytes else \
                self.end
            if nbytes:
                self.pending += [memoryview(bytes(start - self.end)),
                                 memoryview(torch.empty(
                                     0, dtype=torch.uint8).set_(
                                         storage).numpy())]
                if len(self.pending) > 1000:
                    self.flush()
            self.end = start + nbytes
            self.storages[key] = len(self.table)
            self.table.append([start, nbytes,
                               self.locations.get(key, 'cpu')])
        return self.storages[key]

    def flush(self) -> None:
        """Write the queued bytes (few system calls for many storages)."""
        views, self.pending = self.pending, []
        while views:
            done = os.pwritev(self.data_fd, views[:1024], self.written)
            self.written, first = self.written + done, 0
            while first < len(views) and done >= len(views[first]):
                done -= len(views[first])
                first += 1
            views = views[first:]
            if done:
                views[0] = views[0][done:]

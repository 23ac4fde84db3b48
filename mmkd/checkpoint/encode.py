"""Write what ``torch.load`` returned in the loader as tagged plain data
(:mod:`.wire`), a shared object once; anything else is refused."""
import os
from collections import Counter, OrderedDict
from typing import Any, Dict, List

import torch

from . import wire
from .allow_list import Call
from .errors import UnsafeCheckpointError

_TAGS = {kind: tag for tag, kind in wire.CONTAINERS.items()}
_INLINE = {kind: (tag, to) for tag, (kind, to, _) in wire.INLINE.items()}


class Encoder:
    """Writes one loaded checkpoint.

    Args:
        data_fd (int): The data channel.
        locations (dict): ``storage._cdata`` -> its saved location.
    """

    def __init__(self, data_fd: int, locations: Dict[int, str]) -> None:
        self.data_fd, self.locations = data_fd, locations
        self.index: Dict[int, int] = {}  # id -> index of a written object
        self.keep: List[Any] = []  # written by id: keep the ids unique
        self.storages: Dict[int, int] = {}  # storage _cdata -> index
        self.table: List[list] = []  # [offset, nbytes, location]
        self.end = 0

    def result(self, obj: Any) -> dict:
        """The loader's result for ``obj``."""
        return {'value': self.value(obj), 'storages': self.table}

    def value(self, obj: Any) -> Any:
        """``obj`` as tagged data."""
        kind = type(obj)
        if kind in (type(None), bool, float, str) or \
                kind is int and -2**63 < obj < 2**63:
            return obj
        if kind in _INLINE:
            return [_INLINE[kind][0], _INLINE[kind][1](obj)]
        if id(obj) in self.index:
            return ['r', self.index[id(obj)]]
        value = self.container(obj, kind)
        self.index[id(obj)] = len(self.keep)
        self.keep.append(obj)
        return value

    def container(self, obj: Any, kind: type) -> list:
        """Any other value."""
        if kind in _TAGS:
            return [_TAGS[kind]] + [self.value(i) for i in obj]
        if kind in (dict, OrderedDict, Counter):
            head = ['d'] if kind is dict else ['C'] if kind is Counter \
                else ['o', self.value(vars(obj) or None)]
            for key, item in obj.items():
                head += [self.value(key), self.value(item)]
            return head
        if issubclass(kind, Call):
            return ['n', obj.kind, self.value(  # _reconstruct(ndarray, ...)
                [] if obj.kind == 'reconstruct' else obj.args),
                self.value(obj.state)]
        if kind in (torch.Tensor, torch.nn.Parameter):
            return self.tensor(obj)
        if kind in (torch.UntypedStorage, torch.TypedStorage):
            typed = kind is torch.TypedStorage
            return ['g', self.storage(obj._untyped_storage if typed else obj),
                    str(obj.dtype) if typed else None]
        raise UnsafeCheckpointError(
            f'it holds a {kind.__module__}.{kind.__qualname__}, which the '
            'loader does not hand back')

    def tensor(self, t: torch.Tensor) -> list:
        if t.layout in wire.SPARSE:
            coalesced = t.layout == torch.sparse_coo and t.is_coalesced()
            return ['y', str(t.layout), list(t.shape), coalesced] + [
                self.value(getattr(t, p)()) for p in wire.SPARSE[t.layout]]
        if t.layout != torch.strided or t.is_quantized or t.is_meta or \
                t.is_nested or t.device.type != 'cpu':
            raise UnsafeCheckpointError(
                f'it holds a {t.layout} {t.dtype} tensor on {t.device}; save '
                'a dense one instead')
        flags = (wire.REQUIRES_GRAD if t.requires_grad else 0) | \
            (wire.PARAMETER if type(t) is torch.nn.Parameter else 0)
        return ['x', self.value(vars(t) or None),
                self.storage(t.untyped_storage()), str(t.dtype),
                t.storage_offset(), list(t.shape), list(t.stride()), flags]

    def storage(self, storage: torch.UntypedStorage) -> int:
        """The index of a storage, its bytes written once (``EFBIG`` past
        the output limit)."""
        key, nbytes = storage._cdata, storage.nbytes()
        if key not in self.storages:
            start = -self.end % wire.ALIGN + self.end if nbytes else self.end
            data, done = memoryview(torch.empty(0, dtype=torch.uint8).set_(
                storage).numpy()), 0
            while done < nbytes:
                done += os.pwrite(self.data_fd, data[done:], start + done)
            self.end = start + nbytes
            self.storages[key] = len(self.table)
            self.table.append([start, nbytes,
                               self.locations.get(key, 'cpu')])
        return self.storages[key]

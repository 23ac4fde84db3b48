"""The loader's result: JSON (never pickle) of plain values and lists
``[tag, ...]``, whose tables are here; storages' bytes in a second channel;
the :class:`Encoder` that writes it in the loader."""
import json
import os
from collections import Counter, OrderedDict
from typing import Any, Dict, List, Tuple

import torch

from .allow_list import Call
from .errors import UnsafeCheckpointError

MAGIC = b'MMKD\x02'
REQUIRES_GRAD, PARAMETER = 1, 2  # tensor flags
ALIGN = 64  # storages start at multiples of this in the data channel
#: tag -> container type, its items after the tag
CONTAINERS = {'l': list, 't': tuple, 's': set, 'f': frozenset,
              'z': torch.Size}
#: tag -> (type, to JSON, from JSON) of values written inline
INLINE = {
    'i': (int, hex, lambda s: int(s, 16)),
    'c': (complex, lambda c: [c.real, c.imag],
          lambda p: complex(*map(float, p))),
    'b': (bytes, lambda b: b.decode('latin-1'),
          lambda s: s.encode('latin-1')),
    'a': (bytearray, lambda b: b.decode('latin-1'),
          lambda s: bytearray(s.encode('latin-1'))),
    'p': (torch.dtype, str, lambda s: dtype(s)),
    'v': (torch.device, str, lambda s: torch.device(s[:64])),
}
#: sparse layout -> the methods that give its parts
SPARSE = {
    torch.sparse_coo: ('_indices', '_values'),
    torch.sparse_csr: ('crow_indices', 'col_indices', 'values'),
    torch.sparse_bsr: ('crow_indices', 'col_indices', 'values'),
    torch.sparse_csc: ('ccol_indices', 'row_indices', 'values'),
    torch.sparse_bsc: ('ccol_indices', 'row_indices', 'values'),
}
_TAGS = {kind: tag for tag, kind in CONTAINERS.items()}
_INLINE = {kind: (tag, to) for tag, (kind, to, _) in INLINE.items()}


class MalformedResult(UnsafeCheckpointError):
    """The loader's result does not follow this format."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f'the loader process returned malformed data ({detail})')


def dtype(name: Any) -> torch.dtype:
    """The torch dtype named ``name`` (e.g. ``'torch.float32'``)."""
    value = getattr(torch, name[6:], None) if isinstance(name, str) and \
        name.startswith('torch.') else None
    if not isinstance(value, torch.dtype):
        raise MalformedResult(f'unknown torch dtype {name!r:.60}')
    return value


def dumps(result: dict) -> bytes:
    """``result`` as the loader writes it."""
    return MAGIC + json.dumps(result, ensure_ascii=False, separators=(
        ',', ':')).encode('utf-8', 'surrogatepass')


def loads(data: bytes) -> dict:
    """What :func:`dumps` wrote."""
    try:
        result = json.loads(data[len(MAGIC):].decode(
            'utf-8', 'surrogatepass')) if data.startswith(MAGIC) else None
        if type(result) is not dict:
            raise ValueError('no magic number, or not a dict')
        return result
    except (ValueError, RecursionError) as e:
        raise MalformedResult(f'{type(e).__name__}: {e}'[:200]) from None


class Encoder:
    """Writes one loaded checkpoint.

    Args:
        data_fd (int): The data channel.
        locations (dict): ``storage._cdata`` -> its saved location.
    """

    def __init__(self, data_fd: int, locations: Dict[int, str]) -> None:
        self.data_fd, self.locations = data_fd, locations
        #: id -> (index, the object: kept alive so that ids stay unique)
        self.index: Dict[int, Tuple[int, Any]] = {}
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
            return ['r', self.index[id(obj)][0]]
        value = self.container(obj, kind)
        self.index[id(obj)] = (len(self.index), obj)
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
        if t.layout in SPARSE:
            coalesced = t.layout == torch.sparse_coo and t.is_coalesced()
            return ['y', str(t.layout), list(t.shape), coalesced] + [
                self.value(getattr(t, p)()) for p in SPARSE[t.layout]]
        if t.layout != torch.strided or t.is_quantized or t.is_meta or \
                t.is_nested or t.device.type != 'cpu':
            raise UnsafeCheckpointError(
                f'it holds a {t.layout} {t.dtype} tensor on {t.device}; save '
                'a dense one instead')
        flags = (REQUIRES_GRAD if t.requires_grad else 0) | \
            (PARAMETER if type(t) is torch.nn.Parameter else 0)
        return ['x', self.value(vars(t) or None),
                self.storage(t.untyped_storage()), str(t.dtype),
                t.storage_offset(), list(t.shape), list(t.stride()), flags]

    def storage(self, storage: torch.UntypedStorage) -> int:
        """A storage's index; its bytes written once (EFBIG past the limit)."""
        key, nbytes = storage._cdata, storage.nbytes()
        if key not in self.storages:
            start = -self.end % ALIGN + self.end if nbytes else self.end
            data, done = memoryview(torch.empty(0, dtype=torch.uint8).set_(
                storage).numpy()), 0
            while done < nbytes:
                done += os.pwrite(self.data_fd, data[done:], start + done)
            self.end = start + nbytes
            self.storages[key] = len(self.table)
            self.table.append([start, nbytes,
                               self.locations.get(key, 'cpu')])
        return self.storages[key]

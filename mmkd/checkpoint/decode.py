"""Build the loaded checkpoint in the training process from the loader's
tagged data (:mod:`.wire`), with bounds, before anyone sees it:

- nesting: no container deeper than ``limits.MAX_NESTING`` levels;
- shared objects keep their identity, but what a deep copy would visit
  (every occurrence counted) may not exceed the file's size +
  ``limits.NODES_BASE``;
- dict and set keys may share hash values at most
  ``limits.HASH_COLLISIONS`` times per container (else quadratic inserts);
- storages are views of the data channel, mapped once, in order and not
  overlapping; tensors fit their storage, claim no more bytes than it holds
  and all views together at most ``limits.VIEWS_PER_BYTE`` × the storages'
  bytes + ``limits.VIEW_BASE``; sparse tensors are checked by torch.
"""
import math
import mmap
import pickle
from collections import OrderedDict
from typing import Any, Callable, List, Tuple

import torch
from mmengine.logging import HistoryBuffer

from . import limits, wire
from .allow_list import STATISTICS
from .errors import TOO_DEEP, UnsafeCheckpointError
from .safe_numpy import build_array, build_dtype, build_scalar

_LAYOUTS = {str(layout): layout for layout in (
    torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr,
    torch.sparse_bsc)}
#: tags whose value holds other values (a level of nesting)
_NESTED = set(wire.CONTAINERS) | {'d', 'o', 'H', 'x', 'y'}
_PLAIN = (type(None), bool, int, float, str)
Entry = Tuple[Any, int, int]  # value, levels of nesting, unfolded size


def _dtype(name: Any) -> torch.dtype:
    value = getattr(torch, name[6:], None) if isinstance(name, str) and \
        name.startswith('torch.') else None
    if not isinstance(value, torch.dtype):
        raise wire.MalformedResult(f'unknown torch dtype {name!r:.60}')
    return value


def _ints(values: Any) -> List[int]:
    if type(values) is not list or len(values) > 64 or any(
            type(v) is not int or v < 0 for v in values):
        raise wire.MalformedResult(f'sizes {values!r:.100}')
    return values


def _not_valid(what: str, e: Exception) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'{what} that is not valid: {" ".join(str(e).split())[:300]}')


class Decoder:
    """Builds one result.

    Args:
        table (list): ``[offset, nbytes, location]`` of each storage.
        data_fd (int): The data channel.
        data_size (int): Its size, bytes.
        file_size (int): The checkpoint's size, for the bounds.
        map_location: As in ``torch.load``.
    """

    def __init__(self, table: Any, data_fd: int, data_size: int,
                 file_size: int, map_location: Any) -> None:
        self.max_nodes = file_size + limits.NODES_BASE
        self.max_views = limits.VIEWS_PER_BYTE * data_size + limits.VIEW_BASE
        self.views = 0
        self.memo: List[Entry] = []
        restore: Callable = \
            torch.serialization._get_restore_location(map_location)
        buffer = mmap.mmap(data_fd, data_size, mmap.MAP_SHARED | getattr(
            mmap, 'MAP_POPULATE', 0)) if data_size else None
        self.storages, end = [], 0
        for offset, nbytes, location in table:
            _ints([offset, nbytes])
            if offset < end or offset + nbytes > data_size or \
                    type(location) is not str:
                raise wire.MalformedResult(
                    f'storage bytes {offset}..{offset + nbytes} overlap '
                    f'another or lie outside the {data_size} written')
            end = offset + nbytes
            data = torch.frombuffer(buffer, dtype=torch.uint8, count=nbytes,
                                    offset=offset) if nbytes else \
                torch.empty(0, dtype=torch.uint8)
            self.storages.append(restore(data.untyped_storage(),
                                         location[:64]))

    def value(self, data: Any, level: int) -> Entry:
        """Build ``data``, a value at nesting ``level``."""
        if type(data) in _PLAIN:
            return data, 0, 1
        if type(data) is not list or not data:
            raise wire.MalformedResult(f'a value {data!r:.60}')
        tag = data[0]
        if tag == 'r':
            entry = self.memo[data[1]]
            if level - 1 + entry[1] > limits.MAX_NESTING:
                raise UnsafeCheckpointError(
                    TOO_DEEP.format(limit=limits.MAX_NESTING))
            return entry
        if tag in _NESTED and level > limits.MAX_NESTING:
            raise UnsafeCheckpointError(
                TOO_DEEP.format(limit=limits.MAX_NESTING))
        parts: List[Entry] = []
        plain = 0

        def inner(item: Any) -> Any:
            nonlocal plain
            if type(item) in _PLAIN:
                plain += 1
                return item
            parts.append(self.value(item, level + 1))
            return parts[-1][0]

        value = self.build(tag, data, inner)
        nodes = 1 + plain + sum(p[2] for p in parts)
        if nodes > self.max_nodes:
            raise UnsafeCheckpointError(
                f'a deep copy of it would visit more than {self.max_nodes:,}'
                ' objects (the file size in bytes + NODES_BASE): objects '
                'shared many times over, e.g. a DAG of tuples, which '
                "mmengine's resume deep-copies level by level")
        height = 1 + max((p[1] for p in parts), default=0) \
            if tag in _NESTED else 0
        self.memo.append((value, height, nodes))
        return self.memo[-1]

    def build(self, tag: str, data: list, inner: Callable) -> Any:
        """The value of tagged ``data``; ``inner`` builds a value in it."""
        if tag in wire.CONTAINERS:
            items = [inner(d) for d in data[1:]]
            if tag in 'sf':
                self.check_hashes(items)
            elif any(type(i) is not int for i in items) and tag == 'z':
                raise wire.MalformedResult('a torch.Size of non-ints')
            return wire.CONTAINERS[tag](items)
        if tag in ('d', 'o'):
            attrs = inner(data[1]) if tag == 'o' else None
            items = [inner(d) for d in data[2 if tag == 'o' else 1:]]
            self.check_hashes(items[0::2])
            value = (dict if tag == 'd' else OrderedDict)(
                zip(items[0::2], items[1::2]))
            return self.set_attributes(value, attrs)
        if tag == 'i':
            return int(data[1], 16)
        if tag == 'c':
            return complex(float(data[1]), float(data[2]))
        if tag in 'ba':
            return (bytes if tag == 'b' else bytearray)(
                data[1].encode('latin-1'))
        if tag == 'p':
            return _dtype(data[1])
        if tag == 'v':
            return torch.device(data[1][:64])
        if tag == 'h':
            allowed = STATISTICS | set(HistoryBuffer._statistics_methods)
            if data[1] not in allowed:
                raise UnsafeCheckpointError(
                    f'it names HistoryBuffer.{data[1]:.60}, which is not a '
                    f'statistics method ({sorted(allowed)})')
            return getattr(HistoryBuffer, data[1])
        if tag == 'H':
            state = inner(data[1])
            if type(state) is not dict or any(type(k) is not str
                                              for k in state):
                raise UnsafeCheckpointError(
                    f'a HistoryBuffer state {state!r:.100} that is not a '
                    'dict of attributes')
            buffer = HistoryBuffer.__new__(HistoryBuffer)
            buffer.__setstate__(dict(state))
            return buffer
        if tag in ('nd', 'ns', 'na'):
            try:
                if tag == 'nd':
                    return build_dtype(data[1])
                if tag == 'ns':
                    return build_scalar(data[1], data[2].encode('latin-1'))
                return build_array(data[1], data[2], data[3],
                                   data[4].encode('latin-1'))
            except pickle.UnpicklingError as e:
                raise UnsafeCheckpointError(str(e).rstrip('.')) from None
        if tag == 'g':
            storage = self.storages[data[1]]
            return storage if data[2] is None else torch.TypedStorage(
                wrap_storage=storage, dtype=_dtype(data[2]), _internal=True)
        if tag == 'x':
            return self.tensor(data, inner(data[1]))
        if tag == 'y':
            return self.sparse(data, [inner(d) for d in data[4:]])
        raise wire.MalformedResult(f'unknown tag {tag!r:.20}')

    def check_hashes(self, keys: List[Any]) -> None:
        shared = len(keys) - len({hash(k) for k in keys})
        if shared > limits.HASH_COLLISIONS:
            raise UnsafeCheckpointError(
                f'{shared:,} keys of one dict or set share hash values with '
                f'other keys (at most {limits.HASH_COLLISIONS} may): '
                'inserting them would take quadratic time')

    @staticmethod
    def set_attributes(obj: Any, attrs: Any) -> Any:
        """Set the attributes a pickle gave an OrderedDict or a tensor (e.g.
        a state dict's ``_metadata``) without calling any setter."""
        if attrs is None:
            return obj
        if type(attrs) is not dict or any(
                type(k) is not str or hasattr(type(obj), k) for k in attrs):
            raise UnsafeCheckpointError(
                f'attributes {list(attrs)[:5]!r:.200} of a '
                f'{type(obj).__name__}: only new attribute names are '
                'allowed')
        obj.__dict__.update(attrs)
        return obj

    def tensor(self, data: list, attrs: Any) -> torch.Tensor:
        _, _, index, dtype, offset, sizes, strides, flags = data
        storage, dtype = self.storages[_ints([index])[0]], _dtype(dtype)
        sizes, strides = _ints(sizes), _ints(strides)
        claimed = math.prod(sizes) * dtype.itemsize
        self.views += claimed
        if claimed and (claimed > storage.nbytes()
                        or self.views > self.max_views):
            raise UnsafeCheckpointError(
                f'a {dtype} tensor of size {sizes} and strides {strides} '
                f'claims {claimed:,} bytes of a {storage.nbytes():,}-byte '
                f'storage (all views: {self.views:,} bytes, at most '
                f'{self.max_views:,}): a view larger than its storage (stride'
                ' 0 or overlapping) would allocate that much when copied')
        try:
            t = torch.empty(0, dtype=dtype, device=storage.device).set_(
                storage, _ints([offset])[0], sizes, strides)
        except RuntimeError as e:
            raise _not_valid('a tensor view of its storage', e) from None
        if flags & wire.PARAMETER:
            t = torch.nn.Parameter(t, bool(flags & wire.REQUIRES_GRAD))
        elif flags & wire.REQUIRES_GRAD:
            t.requires_grad_(True)
        return self.set_attributes(t, attrs)

    def sparse(self, data: list, parts: List[Any]) -> torch.Tensor:
        layout, sizes = _LAYOUTS.get(data[1]), _ints(data[2])
        if layout is None or len(parts) != (
                2 if layout == torch.sparse_coo else 3) or any(
                    type(t) is not torch.Tensor for t in parts):
            raise wire.MalformedResult(f'a sparse tensor of {len(parts)} '
                                       'parts')
        try:
            if layout == torch.sparse_coo:
                return torch.sparse_coo_tensor(
                    *parts, sizes, check_invariants=True,
                    is_coalesced=bool(data[3]) or None)
            return torch.sparse_compressed_tensor(
                *parts, sizes, layout=layout, check_invariants=True)
        except RuntimeError as e:
            raise _not_valid(f'it holds a {layout} tensor of size {sizes}',
                             e) from None


def decode(result: Any, data_fd: int, data_size: int, file_size: int,
           map_location: Any) -> Any:
    """The checkpoint in the loader's ``result`` (``storages``, ``value``).

    Raises:
        UnsafeCheckpointError: A bound above is exceeded.
        MalformedResult: The data does not follow :mod:`.wire`.
    """
    try:
        return Decoder(result['storages'], data_fd, data_size, file_size,
                       map_location).value(result['value'], 1)[0]
    except (IndexError, KeyError, TypeError, ValueError,
            AttributeError) as e:
        if isinstance(e, wire.MalformedResult):
            raise
        raise wire.MalformedResult(f'{type(e).__name__}: {e}'[:200]) \
            from None

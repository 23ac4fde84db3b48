"""Build the loaded checkpoint in the training process from the loader's
plain tagged data (:mod:`.wire`), walking it with bounds before anyone
sees it.

Every value is built from a type this module names (nothing in the data
names a class or a function), and:

- nesting: no container deeper than ``limits.MAX_NESTING`` levels;
- shared objects keep their identity, but what a deep copy would visit
  (each occurrence of a shared object counted) may not exceed the file's
  size + ``limits.NODES_BASE``: a DAG that a deep copy unfolds is refused;
- dict and set keys may not share hash values (beyond
  ``limits.HASH_COLLISIONS`` per container): inserting them would cost
  quadratic time;
- storages: each is copied once from the data channel, in order, inside it
  and not overlapping another; tensors are views that fit their storage and
  claim no more bytes than it holds; all views together at most
  ``limits.VIEWS_PER_BYTE`` × the storages' bytes + ``limits.VIEW_BASE``;
- sparse tensors are built with torch's invariant checks;
- numpy values as :mod:`.safe_numpy` validates them; ``HistoryBuffer``
  from its state, its statistics methods only by name.
"""
import math
import os
from collections import OrderedDict
from typing import Any, Callable, List, Tuple

import torch
from mmengine.logging import HistoryBuffer

from . import limits, wire
from .allow_list import STATISTICS
from .errors import TOO_DEEP, UnsafeCheckpointError
from .safe_numpy import build_array, build_dtype, build_scalar

_ATOMS = {wire.NONE: None, wire.TRUE: True, wire.FALSE: False}
_LAYOUTS = {str(layout): layout for layout in (
    torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr,
    torch.sparse_bsc)}
_MAX_DIMS = 64


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name[len('torch.'):], None) \
        if name.startswith('torch.') else None
    if not isinstance(value, torch.dtype):
        raise wire.MalformedResult(f'unknown torch dtype {name!r:.60}')
    return value


class Decoder:
    """Builds one result.

    Args:
        data_fd (int): The data channel.
        data_size (int): Its size, bytes.
        file_size (int): The checkpoint's size, for the bounds.
        map_location: As in ``torch.load``.
    """

    def __init__(self, data_fd: int, data_size: int, file_size: int,
                 map_location: Any) -> None:
        self.data_fd, self.data_size = data_fd, data_size
        self.data_end = 0
        self.max_nodes = file_size + limits.NODES_BASE
        self.max_views = limits.VIEWS_PER_BYTE * data_size + limits.VIEW_BASE
        self.views = 0
        self.restore: Callable = \
            torch.serialization._get_restore_location(map_location)
        # (value, depth, unfolded size): the stack, and every value pushed
        self.stack: List[Tuple[Any, int, int]] = []
        self.memo: List[Tuple[Any, int, int]] = []
        self.storages: List[torch.UntypedStorage] = []

    def push(self, value: Any, parts: List[Tuple[Any, int, int]] = (),
             level: int = 1) -> None:
        """Push ``value`` made of ``parts`` (``level``: 1 for a container,
        0 for an atom), checking its depth and unfolded size."""
        depth = level + max((p[1] for p in parts), default=0)
        nodes = 1 + sum(p[2] for p in parts)
        if depth > limits.MAX_NESTING:
            raise UnsafeCheckpointError(
                TOO_DEEP.format(limit=limits.MAX_NESTING))
        if nodes > self.max_nodes:
            raise UnsafeCheckpointError(
                f'a deep copy of it would visit more than {self.max_nodes:,}'
                ' objects (the file size in bytes + NODES_BASE): objects '
                'shared many times over, e.g. a DAG of tuples, which '
                "mmengine's resume deep-copies level by level")
        self.stack.append((value, depth, nodes))
        self.memo.append(self.stack[-1])

    def pop(self, n: int) -> List[Tuple[Any, int, int]]:
        if n > len(self.stack):
            raise wire.MalformedResult(f'{n} values wanted, '
                                       f'{len(self.stack)} on the stack')
        if n == 0:
            return []
        parts = self.stack[-n:]
        del self.stack[-n:]
        return parts

    def run(self, reader: wire.Reader) -> Any:
        """Read every opcode; the one value left."""
        while not reader.done():
            self.step(bytes(reader.take(1)), reader)
        if len(self.stack) != 1:
            raise wire.MalformedResult(f'{len(self.stack)} values at the end')
        return self.stack[0][0]

    def step(self, op: bytes, r: wire.Reader) -> None:
        if op in _ATOMS:
            self.push(_ATOMS[op], level=0)
        elif op == wire.INT:
            self.push(int.from_bytes(r.blob(), 'little', signed=True),
                      level=0)
        elif op == wire.FLOAT:
            self.push(r.struct(wire.FLOAT_FORMAT)[0], level=0)
        elif op == wire.COMPLEX:
            self.push(complex(*r.struct(wire.COMPLEX_FORMAT)), level=0)
        elif op == wire.STR:
            self.push(r.text(), level=0)
        elif op in (wire.BYTES, wire.BYTEARRAY):
            blob = r.blob()
            self.push(blob if op == wire.BYTES else bytearray(blob), level=0)
        elif op == wire.DTYPE:
            self.push(_dtype(r.text()), level=0)
        elif op == wire.DEVICE:
            self.push(torch.device(r.text()[:64]), level=0)
        elif op == wire.METHOD:
            self.push(self.method(r.text()), level=0)
        elif op == wire.NP_DTYPE:
            self.push(build_dtype(r.text()), level=0)
        elif op == wire.NP_SCALAR:
            self.push(build_scalar(r.text(), r.blob()), level=0)
        elif op == wire.NP_ARRAY:
            code, fortran = r.text(), bool(r.take(1)[0])
            shape = tuple(r.varint() for _ in range(self.dims(r)))
            self.push(build_array(code, fortran, shape, r.blob()), level=0)
        elif op == wire.REF:
            index = r.varint()
            if index >= len(self.memo):
                raise wire.MalformedResult(f'reference to value {index}')
            self.stack.append(self.memo[index])
            self.memo.append(self.memo[index])
        elif op == wire.STORAGE:
            self.storage(r.varint(), r.varint(), r.text())
        elif op == wire.TENSOR:
            self.tensor(r)
        elif op == wire.SPARSE:
            self.sparse(r)
        else:
            self.container(op, r.varint() if op != wire.HISTORY_BUFFER
                           else 1)

    def container(self, op: bytes, n: int) -> None:
        if op in (wire.LIST, wire.TUPLE, wire.SIZE):
            parts = self.pop(n)
            items = [p[0] for p in parts]
            kind = {wire.LIST: list, wire.TUPLE: tuple,
                    wire.SIZE: torch.Size}[op]
            if op == wire.SIZE and any(type(i) is not int for i in items):
                raise wire.MalformedResult('a torch.Size of non-ints')
            self.push(kind(items), parts)
        elif op in (wire.SET, wire.FROZENSET):
            parts = self.pop(n)
            items = [p[0] for p in parts]
            self.check_hashes(items)
            self.push((set if op == wire.SET else frozenset)(items), parts)
        elif op in (wire.DICT, wire.ORDERED_DICT):
            attrs = self.pop(1) if op == wire.ORDERED_DICT else []
            parts = self.pop(2 * n)
            keys = [p[0] for p in parts[0::2]]
            self.check_hashes(keys)
            value = (dict if op == wire.DICT else OrderedDict)(
                zip(keys, [p[0] for p in parts[1::2]]))
            if attrs and attrs[0][0] is not None:
                self.set_attributes(value, attrs[0][0])
            self.push(value, parts + attrs)
        elif op == wire.HISTORY_BUFFER:
            parts = self.pop(1)
            state = parts[0][0]
            if type(state) is not dict or \
                    any(type(k) is not str for k in state):
                raise UnsafeCheckpointError(
                    f'a HistoryBuffer state {state!r:.100} that is not a '
                    'dict of attributes')
            buffer = HistoryBuffer.__new__(HistoryBuffer)
            buffer.__setstate__(dict(state))
            self.push(buffer, parts)
        else:
            raise wire.MalformedResult(f'unknown opcode {op!r}')

    def check_hashes(self, keys: List[Any]) -> None:
        try:
            shared = len(keys) - len({hash(k) for k in keys})
        except TypeError as e:
            raise wire.MalformedResult(f'an unhashable key: {e}') from None
        if shared > limits.HASH_COLLISIONS:
            raise UnsafeCheckpointError(
                f'{shared:,} keys of one dict or set share hash values with '
                f'other keys (at most {limits.HASH_COLLISIONS} may): '
                'inserting them would take quadratic time')

    def set_attributes(self, obj: Any, attrs: Any) -> None:
        """Attributes a pickle set on an OrderedDict or a tensor (e.g. a
        state dict's ``_metadata``), into ``obj.__dict__`` without calling
        any setter."""
        if type(attrs) is not dict or any(
                type(k) is not str or hasattr(type(obj), k) for k in attrs):
            raise UnsafeCheckpointError(
                f'attributes {list(attrs)[:5]!r:.200} of a '
                f'{type(obj).__name__}: only new attribute names are '
                'allowed')
        obj.__dict__.update(attrs)

    def method(self, name: str) -> Any:
        allowed = STATISTICS | set(HistoryBuffer._statistics_methods)
        if name not in allowed:
            raise UnsafeCheckpointError(
                f'it names HistoryBuffer.{name:.60}, which is not a '
                f'statistics method ({sorted(allowed)})')
        return getattr(HistoryBuffer, name)

    def dims(self, r: wire.Reader) -> int:
        ndim = r.varint()
        if ndim > _MAX_DIMS:
            raise wire.MalformedResult(f'{ndim} dimensions')
        return ndim

    def storage(self, offset: int, nbytes: int, location: str) -> None:
        """Copy a storage's bytes from the data channel."""
        if offset < self.data_end or offset + nbytes > self.data_size:
            raise wire.MalformedResult(
                f'storage bytes {offset}..{offset + nbytes} overlap another '
                f'or lie outside the {self.data_size} written')
        self.data_end = offset + nbytes
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        view, done = memoryview(buffer.numpy()), 0
        while done < nbytes:
            got = os.preadv(self.data_fd, [view[done:]], offset + done)
            if got <= 0:
                raise wire.MalformedResult('the data channel ended early')
            done += got
        self.storages.append(
            self.restore(buffer.untyped_storage(), location[:64]))

    def tensor(self, r: wire.Reader) -> None:
        index, dtype, offset = r.varint(), _dtype(r.text()), r.varint()
        ndim = self.dims(r)
        sizes = [r.varint() for _ in range(ndim)]
        strides = [r.varint() for _ in range(ndim)]
        flags = r.take(1)[0]
        attrs = self.pop(1)
        if index >= len(self.storages):
            raise wire.MalformedResult(f'tensor of storage {index}')
        storage = self.storages[index]
        if flags & wire.STORAGE_VALUE:
            self.push(storage, attrs)
            return
        if flags & wire.TYPED_STORAGE:
            self.push(torch.TypedStorage(wrap_storage=storage, dtype=dtype,
                                         _internal=True), attrs)
            return
        numel, size = math.prod(sizes), torch.empty(0, dtype=dtype)
        claimed = numel * size.element_size()
        self.views += claimed
        if numel and (claimed > storage.nbytes()
                      or self.views > self.max_views):
            raise UnsafeCheckpointError(
                f'a {dtype} tensor of size {sizes} and strides {strides} '
                f'claims {claimed:,} bytes of a {storage.nbytes():,}-byte '
                f'storage (all views: {self.views:,} bytes, at most '
                f'{self.max_views:,}): a view larger than its storage (stride'
                ' 0 or overlapping) would allocate that much when copied')
        try:
            t = size.to(storage.device).set_(storage, offset, sizes, strides)
        except RuntimeError as e:
            raise UnsafeCheckpointError(
                f'a tensor view that does not fit its storage: '
                f'{" ".join(str(e).split())[:300]}') from None
        if flags & wire.PARAMETER:
            t = torch.nn.Parameter(t, bool(flags & wire.REQUIRES_GRAD))
        elif flags & wire.REQUIRES_GRAD:
            t.requires_grad_(True)
        if attrs[0][0] is not None:
            self.set_attributes(t, attrs[0][0])
        self.push(t, attrs)

    def sparse(self, r: wire.Reader) -> None:
        layout = _LAYOUTS.get(r.text())
        sizes = [r.varint() for _ in range(self.dims(r))]
        coalesced, n = bool(r.take(1)[0]), r.varint()
        parts = self.pop(n)
        tensors = [p[0] for p in parts]
        if layout is None or n != (2 if layout == torch.sparse_coo else 3) \
                or any(type(t) is not torch.Tensor for t in tensors):
            raise wire.MalformedResult(f'a sparse tensor of {n} parts')
        try:
            if layout == torch.sparse_coo:
                value = torch.sparse_coo_tensor(
                    *tensors, sizes, check_invariants=True,
                    is_coalesced=coalesced or None)
            else:
                value = torch.sparse_compressed_tensor(
                    *tensors, sizes, layout=layout, check_invariants=True)
        except RuntimeError as e:
            raise UnsafeCheckpointError(
                f'a {layout} tensor of size {sizes} that is not valid: '
                f'{" ".join(str(e).split())[:300]}') from None
        self.push(value, parts)


def decode(body: bytes, data_fd: int, data_size: int, file_size: int,
           map_location: Any) -> Any:
    """The checkpoint the loader sent (``body``: its tagged data after
    ``OK``).

    Raises:
        UnsafeCheckpointError: A bound above is exceeded.
        MalformedResult: The data does not follow :mod:`.wire`.
    """
    return Decoder(data_fd, data_size, file_size, map_location).run(
        wire.Reader(body))

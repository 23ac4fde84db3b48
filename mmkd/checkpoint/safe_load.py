"""Load one checkpoint file as untrusted input: unpickled in a confined
loader process (:mod:`.loader`), built here from its result within the
bounds of ``docs/checkpoint_safety.md`` (the channel)."""
import logging
import math
import mmap
import os
import os.path as osp
import re
import shutil
import stat
from collections import Counter, OrderedDict
from typing import IO, Any, Callable, List, NoReturn, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

from . import limits, wire
from .errors import (NEVER_SWITCH_OFF, TOO_DEEP, CheckpointFormatError,
                     UnsafeCheckpointError)
from .loader import run_loader

_warned = set()
_LAYOUTS = {str(layout): layout for layout in wire.SPARSE}
_NESTED = set(wire.CONTAINERS) | {'d', 'o', 'n', 'x', 'y'}
_PLAIN = (type(None), bool, int, float, str)
Entry = Tuple[Any, int, int]  # value, levels of nesting, unfolded size
#: numeric dtype codes (``dtype.str`` without its byte order)
_CODE = re.compile(r'^(b1|[iu][1248]|f[248]|c8|c16)$')
#: Statistics methods every HistoryBuffer has; a checkpoint may name others
#: that this process has registered.
STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _ints(values: Any, most: int = 64) -> List[int]:
    if type(values) is not list or len(values) > most or any(
            type(v) is not int or v < 0 for v in values):
        raise wire.MalformedResult(f'sizes {values!r:.100}')
    return values


def _valid(what: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``make()``; ``what`` refused if torch finds it invalid."""
    try:
        return make()
    except RuntimeError as e:
        raise UnsafeCheckpointError(f'{what} that is not valid: '
                                    f'{" ".join(str(e).split())[:300]}'
                                    ) from None


def _refuse(what: str, numpy: bool = True) -> NoReturn:
    raise UnsafeCheckpointError(f'{what:.200} ' + (
        'in a checkpoint: only numeric numpy arrays, scalars and dtypes are '
        'allowed (bool, int, uint, float and complex)' if numpy else
        'is not allowed'))


def make_call(kind: str, args: list, state: Any) -> Any:
    """The value of a recorded call; anything else is refused.

    Args:
        kind (str): ``'HistoryBuffer'`` (state: its attributes),
            ``'statistic'`` (a method name), ``'dtype'`` (code, align, copy;
            state: version, byte order, ...), ``'scalar'`` (dtype, bytes)
            or ``'reconstruct'`` (state: version, shape, dtype, fortran,
            bytes).
        args (list): The call's arguments, built.
        state: Its state, built.
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


class Decoder:
    """Builds one result within the bounds.

    Args:
        table (list): The storages, ``[offset, nbytes, location]`` each.
        data_fd (int): The data channel; ``data_size``: its bytes.
        file_size (int): The checkpoint's size, for the bound on nodes.
        map_location: As in ``torch.load``.
    """

    def __init__(self, table: Any, data_fd: int, data_size: int,
                 file_size: int, map_location: Any) -> None:
        self.max_views = limits.VIEWS_PER_BYTE * data_size + limits.VIEW_BASE
        self.views, self.storages, self.memo = 0, [], []
        self.max_nodes = file_size + limits.NODES_BASE
        restore = torch.serialization._get_restore_location(map_location)
        buffer = mmap.mmap(data_fd, data_size, mmap.MAP_SHARED | getattr(
            mmap, 'MAP_POPULATE', 0)) if data_size else None
        end = 0
        for offset, nbytes, location in table:
            _ints([offset, nbytes])
            if offset < end or offset + nbytes > data_size or \
                    type(location) is not str:
                raise wire.MalformedResult(f'storage {offset}+{nbytes}')
            end = offset + nbytes
            data = torch.frombuffer(buffer, dtype=torch.uint8, count=nbytes,
                                    offset=offset) if nbytes else \
                torch.empty(0, dtype=torch.uint8)
            self.storages.append(restore(data.untyped_storage(),
                                         location[:64]))

    def value(self, data: Any, level: int) -> Entry:
        """Build ``data``, a value at nesting ``level``."""
        if type(data) is not list or not data:
            raise wire.MalformedResult(f'a value {data!r:.60}')
        tag, parts, plain = data[0], [], [0]
        shared = self.memo[data[1]] if tag == 'r' else None
        depth = level - 1 + shared[1] if shared else level
        if depth > limits.MAX_NESTING and (shared or tag in _NESTED):
            raise UnsafeCheckpointError(
                TOO_DEEP.format(limit=limits.MAX_NESTING))
        if shared:
            return shared

        def inner(item: Any) -> Any:
            if type(item) in _PLAIN:
                plain[0] += 1
                return item
            parts.append(self.value(item, level + 1))
            return parts[-1][0]

        value = self.build(tag, data, inner)
        entry = (value, 1 + max((p[1] for p in parts), default=0)
                 if tag in _NESTED else 0, 1 + plain[0] + sum(
                     p[2] for p in parts))
        if entry[2] > self.max_nodes:
            raise UnsafeCheckpointError(
                f'a deep copy of it would visit more than {self.max_nodes:,}'
                ' objects (shared many times over: a DAG?)')
        if tag not in wire.INLINE:
            self.memo.append(entry)
        return entry

    def build(self, tag: str, data: list, inner: Callable) -> Any:
        """The value of tagged ``data``; ``inner`` builds a value in it."""
        if tag in wire.INLINE:
            return wire.INLINE[tag][2](data[1])
        if tag in wire.CONTAINERS:
            items = [inner(d) for d in data[1:]]
            if tag in 'sf':
                self.check_hashes(items)
            return wire.CONTAINERS[tag](items)
        if tag in ('d', 'o', 'C'):  # dict, OrderedDict, Counter
            attrs = inner(data[1]) if tag == 'o' else None
            items = [inner(d) for d in data[2 if tag == 'o' else 1:]]
            self.check_hashes(items[0::2])
            pairs = zip(items[0::2], items[1::2])
            obj = Counter(dict(pairs)) if tag == 'C' else \
                (dict if tag == 'd' else OrderedDict)(pairs)
            return self.set_attributes(obj, attrs)
        if tag == 'n':
            return make_call(data[1], inner(data[2]), inner(data[3]))
        if tag == 'g':
            storage = self.storages[data[1]]
            return storage if data[2] is None else torch.TypedStorage(
                wrap_storage=storage, dtype=wire.dtype(data[2]),
                _internal=True)
        if tag == 'x':
            return self.tensor(data, inner(data[1]))
        if tag == 'y':
            return self.sparse(data, [inner(d) for d in data[4:]])
        raise wire.MalformedResult(f'unknown tag {tag!r:.20}')

    def check_hashes(self, keys: List[Any]) -> None:
        shared = len(keys) - len({hash(k) for k in keys})
        if shared > limits.HASH_COLLISIONS:
            raise UnsafeCheckpointError(
                f'{shared:,} keys of one dict or set share hash values (at '
                f'most {limits.HASH_COLLISIONS} may): quadratic to insert')

    @staticmethod
    def set_attributes(obj: Any, attrs: Any) -> Any:
        """``obj`` with a pickle's attributes, set without any setter."""
        if attrs is not None and (type(attrs) is not dict or any(
                type(k) is not str or hasattr(type(obj), k) for k in attrs)):
            raise UnsafeCheckpointError(f'attributes {attrs!r:.100} of a '
                                        f'{type(obj).__name__} are not allowed')
        if attrs:
            obj.__dict__.update(attrs)
        return obj

    def tensor(self, data: list, attrs: Any) -> torch.Tensor:
        _, _, index, dtype, offset, sizes, strides, flags = data
        storage, dtype = self.storages[index], wire.dtype(dtype)
        sizes, strides = _ints(sizes), _ints(strides)
        claimed = math.prod(sizes) * dtype.itemsize
        self.views += claimed
        if claimed and (claimed > storage.nbytes()
                        or self.views > self.max_views):
            raise UnsafeCheckpointError(
                f'a tensor of size {sizes} claims {claimed:,} bytes of a '
                f'{storage.nbytes():,}-byte storage (all views at most '
                f'{self.max_views:,}): copying it would allocate that much')
        t = _valid('a tensor view of its storage', lambda: torch.empty(
            0, dtype=dtype, device=storage.device).set_(
                storage, _ints([offset])[0], sizes, strides))
        if flags & wire.PARAMETER:
            t = torch.nn.Parameter(t, bool(flags & wire.REQUIRES_GRAD))
        elif flags & wire.REQUIRES_GRAD:
            t.requires_grad_(True)
        return self.set_attributes(t, attrs)

    def sparse(self, data: list, parts: List[Any]) -> torch.Tensor:
        layout, sizes = _LAYOUTS.get(data[1]), _ints(data[2])
        if layout is None or len(parts) != len(wire.SPARSE[layout]) or any(
                type(t) is not torch.Tensor for t in parts):
            raise wire.MalformedResult(f'{len(parts)} sparse parts')
        coo = layout == torch.sparse_coo
        make = torch.sparse_coo_tensor if coo else \
            torch.sparse_compressed_tensor
        options = dict(is_coalesced=bool(data[3]) or None) if coo else \
            dict(layout=layout)
        return _valid(f'it holds a {layout} tensor of size {sizes}',
                      lambda: make(*parts, sizes, check_invariants=True,
                                   **options))



def _check_format(head: bytes, what: str, name: str) -> None:
    """Refuse a file whose first bytes ``head`` are not torch's zip or
    legacy format (empty, an HTML page, anything else)."""
    if head == b'PK\x03\x04' or head.startswith(b'\x80\x02'):
        return
    found = 'is empty (an interrupted download or save?)' if not head else (
        f'is not a PyTorch checkpoint: it starts with {head!r}, ' + (
            'an HTML page (a login or error page saved instead of the '
            'file?)' if head.lstrip()[:1] == b'<' else 'not a PyTorch file'))
    raise CheckpointFormatError(f'{what}: {name} {found}. Give the path of a '
                                'complete file written by torch.save.')


def _file_fd(file: IO[bytes]) -> int:
    """A descriptor of ``file``'s bytes from its current position: its own
    (duplicated) for a regular file at offset 0, else a copy in a memfd."""
    try:
        if file.tell() == 0 and stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return os.dup(file.fileno())
    except (OSError, AttributeError, ValueError):
        pass
    copy = os.memfd_create('mmkd-checkpoint-file')
    with open(copy, 'wb', closefd=False) as out:
        shutil.copyfileobj(file, out, 1 << 20)
    return copy


def safe_torch_load(file: Union[str, IO[bytes]],
                    map_location: Optional[Union[str, Callable]] = 'cpu',
                    what: str = 'checkpoint') -> Any:
    """Load an untrusted checkpoint: ``torch.load(weights_only=True)`` with
    mmkd's allow-list, in a confined loader process.

    Args:
        file (str | file-like): A local path or an open binary file.
        map_location (str | callable, optional): As in ``torch.load``.
        what (str): What is loaded and the config key that named it, for
            messages (e.g. ``'teacher checkpoint (model.teacher_checkpoint)'``).

    Raises:
        FileNotFoundError: ``file`` is a path that does not exist.
        CheckpointFormatError: The file is not a readable PyTorch checkpoint.
        UnsafeCheckpointError: It holds a global outside the allow-list, or
            loading it exceeds a limit or bound (:mod:`.limits`).
    """
    if isinstance(file, str):
        path = osp.expanduser(file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{what}: no such file: {file}. Check the path (relative '
                f'paths start from {os.getcwd()}).')
        with open(path, 'rb') as f:
            return safe_torch_load(f, map_location, what)
    name = getattr(file, 'name', '<file object>')
    fd, data_fd = _file_fd(file), None
    try:
        size = os.fstat(fd).st_size
        _check_format(os.pread(fd, 4, 0), what, name)
        result, data_fd = run_loader(fd, size)
        for warning in set(map(str, result.get('warnings', ()))) - _warned:
            _warned.add(warning)
            print_log(f'mmkd: checkpoints are loaded in a separate process, '
                      f'but here: {warning}. See docs/checkpoint_safety.md.',
                      logger='current', level=logging.WARNING)
        if 'unsafe' in result:
            raise UnsafeCheckpointError(str(result['unsafe']))
        if 'damaged' in result:
            raise CheckpointFormatError(
                f'{what}: {name} is not a readable PyTorch checkpoint '
                f'(truncated or damaged?): {str(result["damaged"])[:2000]}. '
                'Download or copy it again.')
        try:
            value = result['value']
            return value if type(value) in _PLAIN else Decoder(
                result['storages'], data_fd, os.fstat(data_fd).st_size, size,
                map_location).value(value, 1)[0]
        except (IndexError, KeyError, TypeError, ValueError,
                AttributeError) as e:  # not the format of wire
            raise wire.MalformedResult(f'{type(e).__name__}: {e}'[:200]) \
                from None
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(
            f'Refusing to load {what} {name}: {str(e).rstrip(".")}.\n'
            f'{NEVER_SWITCH_OFF}') from None
    finally:
        for channel in (fd, data_fd):
            if channel is not None:
                os.close(channel)

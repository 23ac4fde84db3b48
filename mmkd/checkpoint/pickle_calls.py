"""What the calls in a checkpoint's pickle may cost, checked before torch's
unpickler makes them: :class:`CallCheck`, within a :class:`CopyBudget`.

torch's weights-only unpickler calls any allow-listed global with any
arguments, and some of them copy or iterate what they are given. A pickle
written by ``torch.save`` gives each such call values it has just written,
so what the calls copy is bounded by the pickle's own length; a crafted one
can repeat a call on one shared (memoized) value at a few bytes a call, or
iterate a tensor whose view covers far more elements than its storage holds.
So each call (and each ``BUILD``, which copies its state into an object, and
each dict key that is a tuple, which Python hashes item by item) is charged
the elements it touches, and the total may not exceed :class:`CopyBudget`.
Besides, the check refuses:

- calls that allocate a size the pickle chooses: ``bytearray(n)`` and the
  tensor constructors (``torch.FloatTensor(n)``), also when called through
  ``_rebuild_from_type_v2``;
- ``_codecs.encode`` with a codec other than latin-1 (how protocol 2 stores
  ``bytes``; other codecs cost more than their input, and any module may
  register one);
- a call that would iterate a tensor or storage (``set(t)`` makes one
  object per row), and a copy of a tensor to another dtype or device whose
  element count the pickle does not state;
- ``HistoryBuffer(...)`` with arguments (``torch.save`` writes it as
  ``HistoryBuffer()`` and its state; its arguments would go through
  ``np.array``, which copies nested lists element by element);
- call arguments that are not a tuple (``torch.save`` always writes one).
"""
import codecs
import math
from typing import Any, Optional, Set

import torch

from . import limits
from .errors import UnsafeCheckpointError
from .pickle_standins import (Data, Global, KeptTuple, LongTuple, Slot,
                              TensorValue, is_data, size_of)
from .window import FileWindow

REBUILD_FROM_TYPE = 'torch._tensor._rebuild_from_type_v2'
_ENCODE = '_codecs.encode'
_BYTEARRAY = 'builtins.bytearray'
_HISTORY_BUFFER = 'mmengine.logging.history_buffer.HistoryBuffer'
_LATIN1 = 'iso8859-1'  # codecs.lookup('latin1').name

#: Calls that make a tensor of their tensor arguments without copying data:
#: the argument index of the size tuple, or of the tensor they wrap.
_TENSOR_VIEWS = {
    'torch._utils._rebuild_tensor': ('size', 2),
    'torch._utils._rebuild_tensor_v2': ('size', 2),
    'torch._utils._rebuild_tensor_v3': ('size', 2),
    'torch._utils._rebuild_qtensor': ('size', 2),
    'torch._utils._rebuild_parameter': ('tensor', 0),
    'torch._utils._rebuild_parameter_with_state': ('tensor', 0),
    'torch.nn.parameter.Parameter': ('tensor', 0),
    'torch._utils._rebuild_sparse_tensor': None,
    'torch._utils._rebuild_nested_tensor': None,
    'torch._utils._rebuild_meta_tensor_no_storage': None,
    'torch._utils._rebuild_wrapper_subclass': None,
}
#: Calls that copy their tensor argument (to another dtype or device).
_TENSOR_COPIES = frozenset({
    'torch._utils._rebuild_device_tensor_from_cpu_tensor',
    'torch._utils._rebuild_device_tensor_from_numpy',
})


def _tensor_classes() -> frozenset:
    classes = getattr(torch, '_tensor_classes', ())
    return frozenset({'torch.Tensor'}
                     | {f'{c.__module__}.{c.__name__}' for c in classes})


_TENSOR_CLASSES = _tensor_classes()


class CopyBudget:
    """The elements a pickle's calls may copy, iterate or hash:
    :data:`~mmkd.checkpoint.limits.COPIES_PER_BYTE` per byte of the pickle
    read so far, one per element of the storages it references (each
    storage counted once), and :data:`~mmkd.checkpoint.limits.COPY_SLACK`.

    Args:
        window (FileWindow): The pickle being scanned, at its first opcode.
    """

    def __init__(self, window: FileWindow) -> None:
        self.window = window
        self.start = window.tell()
        self.copied = 0
        self.storage_elements = 0
        self.storages: Set[Any] = set()

    def add_storage(self, key: Any, numel: Any) -> None:
        """Count a storage reference's elements (once per key).

        Args:
            key: The storage's key.
            numel: Its declared element count (checked by the caller).
        """
        if type(numel) is int and numel > 0 and key not in self.storages:
            self.storages.add(key)
            self.storage_elements += numel

    def charge(self, elements: int, what: str) -> None:
        """Count what a call copies.

        Args:
            elements (int): The elements it touches.
            what (str): The call, for the message.

        Raises:
            UnsafeCheckpointError: The total exceeds the budget.
        """
        if not elements:
            return
        self.copied += elements
        read = self.window.tell() - self.start
        allowed = limits.COPIES_PER_BYTE * read + self.storage_elements + \
            limits.COPY_SLACK
        if self.copied > allowed:
            raise UnsafeCheckpointError(
                f'its calls and dict keys copy, iterate or hash '
                f'{self.copied:,} elements (the last: {what}), more than the '
                f'{allowed:,} its first {read:,} bytes of pickle and '
                f'{self.storage_elements:,} storage elements account for '
                f'({limits.COPIES_PER_BYTE} per byte, 1 per element): a '
                'pickle written by torch.save touches each value it writes '
                'twice at most, while a call repeated on one shared '
                'value (set(x) 50 times on a list of 100,000 ints took 207 '
                'MB from a 0.37 MB file) or a key of shared tuples nested in '
                'one another (2**60 steps to hash from 1.4 KB) makes a small '
                "file take a loader's memory or time")


class CallCheck:
    """Checks each call and ``BUILD`` of one pickle, and says what it
    returns (module docstring).

    Args:
        budget (CopyBudget): What the pickle's calls may copy.
    """

    def __init__(self, budget: CopyBudget) -> None:
        self.budget = budget

    def call(self, func: Any, args: Any) -> Any:
        """A ``REDUCE`` or ``NEWOBJ``: ``func(*args)``.

        Args:
            func: The called stack entry.
            args: Its argument tuple.

        Returns:
            The result's stand-in.

        Raises:
            UnsafeCheckpointError: The call is refused (module docstring).
        """
        depth = max(1, getattr(args, 'depth', 0))
        if type(func) is not Global:
            return Slot(depth, size_of(args))  # torch refuses the call
        name = func.name
        if type(args) is not KeptTuple and type(args) is not LongTuple:
            raise UnsafeCheckpointError(
                f'it calls {name}(...) with arguments that are not a tuple; '
                'torch.save always writes a tuple')
        items = args.items if type(args) is KeptTuple else None
        if name in _TENSOR_CLASSES or name == _BYTEARRAY:
            self._refuse_allocation(name, items)
        if name == REBUILD_FROM_TYPE and items is not None \
                and len(items) >= 3:
            # it calls items[0](*items[2]), then sets the state items[3]
            result = self.call(items[0], items[2])
            if len(items) >= 4:
                self.budget.charge(self.state_size(items[3]),
                                   f'{name}(...) setting its state')
            return result
        if name == _HISTORY_BUFFER and args.size:
            raise UnsafeCheckpointError(
                f'it calls {name}(...) with arguments; torch.save writes a '
                'HistoryBuffer as HistoryBuffer() and its state (arguments '
                'go through np.array, which copies nested lists element by '
                'element)')
        if name == _ENCODE:
            self._check_codec(items)
        cost = self._arguments_cost(name, args, items)
        if cost:
            self.budget.charge(cost, f'{name}(...)')
        if name in _TENSOR_VIEWS or name in _TENSOR_COPIES:
            return TensorValue(self._numel(name, items), depth)
        if name in (_ENCODE, _BYTEARRAY):
            return Data(cost)
        return Slot(depth, cost)

    def build(self, state: Any) -> int:
        """A ``BUILD``: the object below takes ``state`` (its attributes or
        ``__setstate__``).

        Args:
            state: The state's stand-in.

        Returns:
            int: The elements it copies (already charged).
        """
        size = self.state_size(state)
        if size:
            self.budget.charge(size, 'BUILD (an object taking its state)')
        return size

    @staticmethod
    def state_size(state: Any) -> int:
        """The elements setting ``state`` copies: a dict's entries, a state
        tuple's items' (a tensor in it is referenced, not copied)."""
        if type(state) is KeptTuple:
            return sum(size_of(item) for item in state.items
                       if type(item) is not TensorValue)
        if type(state) is LongTuple:
            return state.items_size
        return size_of(state)

    def _arguments_cost(self, name: str, args: Any,
                        items: Optional[tuple]) -> int:
        """The elements a call to ``name`` touches in its arguments.

        Raises:
            UnsafeCheckpointError: It would iterate a tensor, or copy one
                whose element count is not stated.
        """
        if items is None:  # a LongTuple
            if args.has_tensor and name not in _TENSOR_VIEWS:
                self._refuse_tensor_argument(name)
            return args.items_size
        cost = 0
        for item in items:
            if type(item) is str:
                cost += len(item)
            elif type(item) is not TensorValue:
                cost += getattr(item, 'size', 0)
            elif name in _TENSOR_COPIES:
                if item.numel is None:
                    raise UnsafeCheckpointError(
                        f'it calls {name}(...), which copies a tensor, on a '
                        'tensor whose element count its pickle does not '
                        'state, so the copy cannot be bounded')
                cost += item.numel
            elif name not in _TENSOR_VIEWS:
                self._refuse_tensor_argument(name)
        return cost

    @staticmethod
    def _refuse_tensor_argument(name: str) -> None:
        raise UnsafeCheckpointError(
            f'it calls {name}(...) on a tensor or storage, which iterates it '
            'element by element (set() of a 1-element tensor viewed as '
            '1,000,000 rows took 660 MB from a 1.5 KB file); torch.save '
            'never passes a tensor to such a call')

    @staticmethod
    def _numel(name: str, items: Optional[tuple]) -> Optional[int]:
        """The element count of a rebuilt tensor, where its pickle states
        it."""
        where = _TENSOR_VIEWS.get(name, ('tensor', 0))
        if where is None or items is None or len(items) <= where[1]:
            return None
        item = items[where[1]]
        if where[0] == 'tensor':
            return item.numel if type(item) is TensorValue else None
        if type(item) is KeptTuple and all(
                type(n) is int and n >= 0 for n in item.items):
            return math.prod(item.items)
        return None

    @staticmethod
    def _check_codec(items: Optional[tuple]) -> None:
        codec = items[1] if items is not None and len(items) == 2 else None
        try:
            found = codecs.lookup(codec).name if isinstance(codec, str) \
                else None
        except LookupError:
            found = None
        if found != _LATIN1:
            raise UnsafeCheckpointError(
                f'it calls _codecs.encode(...) with the codec {codec!r:.40} '
                "(or with other arguments than text and a codec); "
                "torch.save stores bytes as encode(text, 'latin1'), and "
                'other codecs can cost more than their input')

    @staticmethod
    def _refuse_allocation(name: str, items: Optional[tuple]) -> None:
        """Refuse a call that allocates memory of a size the pickle chooses.

        Raises:
            UnsafeCheckpointError: ``name`` is a tensor constructor, or
                ``bytearray`` with anything but text.
        """
        if name in _TENSOR_CLASSES:
            raise UnsafeCheckpointError(
                f'it calls the tensor constructor {name}(...), which '
                'allocates memory of a size the pickle chooses '
                f'({name}(1000000000) takes 4 GB from a few bytes); '
                'torch.save rebuilds tensors from their stored data, never '
                'this way')
        if name == _BYTEARRAY and (
                items is None or len(items) > 2
                or not all(map(is_data, items))):
            raise UnsafeCheckpointError(
                'it calls bytearray(...) with something other than text or '
                'bytes (bytearray(1073741824) allocates 1 GB from a few '
                'bytes); torch.save writes a bytearray as bytearray(bytes)')

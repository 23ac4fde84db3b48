"""What the pickle scan (:mod:`.pickle_scan`) keeps of each value the
unpickler would build: a stand-in.

Short strings and ints are kept as themselves; everything else is a small
object recording how deeply it nests (``depth``: containers inside
containers) and how many elements a call that copies or iterates it would
touch (``size``: a string's or bytes' length; for a container, its entries,
where an entry that is a tuple counts what hashing it visits, see
:func:`hash_cost`). A tensor or storage records its element count where the
pickle states it.
One stand-in stands for one object torch's unpickler would build, so the
scan holds no more of them than the unpickler holds objects.
"""
import itertools
from typing import Any, List, Optional, Tuple

#: Strings up to this length are kept (storage keys, codec names, 'storage').
KEEP_TEXT = 64
#: Tuples up to this length keep their items (persistent ids, call args).
KEEP_ITEMS = 8


class Slot:
    """A value the scan does not keep: a container, an object, a call's
    result.

    Args:
        depth (int): How deeply it nests (1 for an empty container).
        size (int): The elements copying or iterating it touches.
    """
    __slots__ = ('depth', 'size')

    def __init__(self, depth: int, size: int = 0) -> None:
        self.depth = depth
        self.size = size


class Leaf(Slot):
    """None, a bool or a float: nothing to copy (one shared instance)."""
    __slots__ = ()


class Text(Slot):
    """A string too long to keep; ``size`` is its length in UTF-8 bytes."""
    __slots__ = ()

    def __init__(self, size: int) -> None:
        super().__init__(0, size)


class Data(Slot):
    """``bytes`` or a ``bytearray`` (what ``_codecs.encode`` or
    ``bytearray`` make of text); ``size`` is an upper bound of its length."""
    __slots__ = ()

    def __init__(self, size: int) -> None:
        super().__init__(0, size)


class Global(Slot):
    """A global the pickle names (``module.name``, as torch maps it)."""
    __slots__ = ('name', )

    def __init__(self, name: str) -> None:
        super().__init__(0)
        self.name = name


class KeptTuple(Slot):
    """A tuple of at most :data:`KEEP_ITEMS` items, items kept; its size
    counts what hashing it visits (:func:`hash_cost`)."""
    __slots__ = ('items', )

    def __init__(self, items: tuple, depth: int) -> None:
        # the sum of the items' hash_cost, inlined (one per tensor written)
        size = len(items)
        for item in items:
            if type(item) in HASHES_ITEMS:
                size += item.size  # hash_cost(item) = 1 + item.size
        super().__init__(depth, size)
        self.items = items


class LongTuple(Slot):
    """A longer tuple: its size (as :class:`KeptTuple`'s), what its items
    would cost a call that takes them as arguments, and whether one of them
    is a tensor.

    Args:
        depth (int): How deeply it nests.
        size (int): The sum of its items' :func:`hash_cost`.
        items_size (int): The sum of its items' sizes (tensors not counted).
        has_tensor (bool): Whether an item is a :class:`TensorValue`.
    """
    __slots__ = ('items_size', 'has_tensor')

    def __init__(self, depth: int, size: int, items_size: int,
                 has_tensor: bool) -> None:
        super().__init__(depth, size)
        self.items_size = items_size
        self.has_tensor = has_tensor


class KeptList(Slot):
    """A list whose items are kept (only when asked: a legacy checkpoint's
    storage keys)."""
    __slots__ = ('items', )

    def __init__(self) -> None:
        super().__init__(1)
        self.items: List[Any] = []


class TensorValue(Slot):
    """A tensor or a storage; ``numel`` its elements where the pickle states
    them (a storage reference's count, the product of a rebuilt tensor's
    size), else None. Copying or iterating one is not measured by ``size``.
    """
    __slots__ = ('numel', )

    def __init__(self, numel: Optional[int], depth: int = 0) -> None:
        super().__init__(depth)
        self.numel = numel


def is_text(slot: Any) -> bool:
    """Whether a stack entry is a string (kept or too long to keep).

    Args:
        slot: A stack entry.

    Returns:
        bool: True for a string.
    """
    return isinstance(slot, str) or type(slot) is Text


def is_data(slot: Any) -> bool:
    """Whether a stack entry is a string, or bytes made of one (protocol 2
    writes ``bytes`` as ``_codecs.encode(text, 'latin1')``)."""
    return is_text(slot) or type(slot) is Data


def global_name(slot: Any) -> Optional[str]:
    """The name of a global on the stack.

    Args:
        slot: A stack entry.

    Returns:
        str | None: ``'module.name'``, or None when it is not a global.
    """
    return slot.name if type(slot) is Global else None


def size_of(slot: Any) -> int:
    """The elements a call that copies or iterates ``slot`` touches (a
    tensor's are not counted here: see :class:`TensorValue`).

    Args:
        slot: A stack entry.

    Returns:
        int: A kept string's length, a stand-in's ``size``, 0 for an int.
    """
    if isinstance(slot, str):
        return len(slot)
    return getattr(slot, 'size', 0)


def hash_cost(slot: Any) -> int:
    """The items hashing ``slot`` visits. Python does not cache a tuple's
    hash (nor a ``torch.Size``'s): it hashes every item, again for every
    reference to a shared one, so a tuple of two references to one tuple,
    nested 60 times, takes 2**60 steps to hash from a pickle of 1.4 KB.
    Strings and bytes cache theirs; tensors hash by identity. Containers
    count as what hashing them would visit (lists and dicts cannot be hashed:
    counting them only makes the count an upper bound).

    Args:
        slot: A stack entry.

    Returns:
        int: 1 + its size for a tuple, a container or a call's result, else 1.
    """
    return 1 + slot.size if type(slot) in HASHES_ITEMS else 1


def list_items(slot: Any) -> Optional[Tuple[Any, ...]]:
    """The kept items of a list scanned with ``keep_lists``.

    Args:
        slot: A stand-in.

    Returns:
        tuple | None: The items, or None when ``slot`` is not such a list.
    """
    return tuple(slot.items) if type(slot) is KeptList else None


#: Stand-ins whose hash (where they have one) visits their items.
HASHES_ITEMS = frozenset({Slot, KeptTuple, LongTuple, KeptList})
LEAF = Leaf(0)
EMPTY_TUPLE = KeptTuple((), 1)

_DEPTHS, _ZEROS = itertools.repeat('depth'), itertools.repeat(0)


def deepest(items: List[Any]) -> int:
    """Returns:
        int: The deepest nesting among stack entries (0 when none nests;
        kept strings and ints have no ``depth``).
    """
    return max(map(getattr, items, _DEPTHS, _ZEROS), default=0)

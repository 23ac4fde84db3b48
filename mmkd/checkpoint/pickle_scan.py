"""Checks on a checkpoint's pickle before it is unpickled: :func:`scan_pickle`.

The scan reads the pickle as a stream of opcodes from a
:class:`~mmkd.checkpoint.window.FileWindow` (one 64 KiB piece at a time,
nothing executed) and follows torch's weights-only unpickler on a stack of
stand-ins (:mod:`.pickle_standins`: short strings, ints, global names and
short tuples kept, other values as their nesting depth and size). It stops
where torch's unpickler would refuse (an opcode or persistent id it does not
support), and refuses:

- a codec whose decoding time is superlinear, named anywhere in the pickle:
  ``punycode`` (or ``idna``, which runs it on each label) is quadratic: a
  37 KB checkpoint kept a loader busy for 25 s;
- calls that allocate a size the pickle chooses, or copy, iterate or hash more
  than the pickle and its storages account for (:mod:`.pickle_calls`);
- containers nested deeper than :data:`~mmkd.checkpoint.limits.MAX_NESTING`
  (as they are written: a structure linked up through the memo afterwards is
  measured again when mmkd walks the loaded checkpoint);
- storage references (persistent ids) that are not literal tuples; each
  literal one goes to the caller, who checks it against the file.

Its memory holds one piece of the file, a stand-in per object torch's own
unpickler then builds, the keys of the storages referenced and at most 4096
short strings already checked; never the pickle.
"""
import codecs
import gc
import struct
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from . import limits
from .errors import TOO_DEEP, CheckpointFormatError, UnsafeCheckpointError
from .pickle_calls import CallCheck, CopyBudget
from .pickle_standins import (EMPTY_TUPLE, HASHES_ITEMS, KEEP_ITEMS,
                              KEEP_TEXT, LEAF, Global, KeptList, KeptTuple,
                              LongTuple, Slot, TensorValue, Text, deepest,
                              hash_cost, size_of)
from .window import FileWindow

try:  # the mapping torch's weights-only unpickler applies to GLOBAL names
    from torch._utils import IMPORT_MAPPING, NAME_MAPPING
except ImportError:  # pragma: no cover - older torch
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

#: Codecs whose cost grows faster than their input.
SUPERLINEAR_CODECS = frozenset({'punycode', 'idna'})

_MAX_GLOBAL_LINE = 4096
_SEEN = 4096


def _codec_name(text: str) -> str:
    try:
        return codecs.lookup(text).name
    except (LookupError, ValueError, TypeError):
        return ''


class Scan(NamedTuple):
    """What :func:`scan_pickle` found."""
    complete: bool  # False: it stopped where torch's unpickler refuses
    top: Any  # the pickled object's stand-in (when complete)


class _TorchRefuses(Exception):
    """The scan reached what torch's unpickler refuses: it stops there."""


_I32 = struct.Struct('<i')
_U16 = struct.Struct('<H')
_U32 = struct.Struct('<I')
_MISSING = object()
#: Bytes the fast loop needs after an opcode (the longest fixed argument).
_AHEAD = 9
#: Stand-ins an object's children may change in place (their own); others
#: are shared or immutable and are replaced on the stack.
_MUTABLE = (Slot, KeptList, TensorValue)


class _Scanner:
    """The stand-in unpickler (see the module docstring).

    Opcodes with no argument or a fixed-size one are handled by methods
    ``(buf, i) -> i`` reading from the window's buffer (the loop makes sure
    the argument is there); the others read through the window.

    Args:
        window (FileWindow): The pickle's bytes.
        on_storage (callable, optional): Called with the items after
            ``'storage'`` of every storage reference; None where torch
            allows no persistent id.
        keep_lists (bool): Keep the items of lists (:class:`KeptList`).
        seen (set): Strings already checked for codec names.
    """

    def __init__(self, window: FileWindow,
                 on_storage: Optional[Callable[[tuple], None]],
                 keep_lists: bool, seen: set) -> None:
        self.window = window
        self.on_storage = on_storage
        self.keep_lists = keep_lists
        self.seen = seen
        self.stack: List[Any] = []
        self.marks: List[List[Any]] = []
        self.memo: Dict[int, Any] = {}
        self.budget = CopyBudget(window)
        self.calls = CallCheck(self.budget)
        self.fast: List[Optional[Callable[[bytes, int], int]]] = [None] * 256
        for op, (name, _) in _FIXED.items():
            self.fast[ord(op)] = getattr(self, name)
        self.slow: Dict[int, Callable[[], Any]] = {
            ord(op): getattr(self, name) for op, name in _VARIABLE.items()}

    # -- the loop ------------------------------------------------------
    def run(self) -> 'Scan':
        """Scan to the pickle's STOP opcode, or to the first opcode torch's
        unpickler refuses.

        Returns:
            Scan: What was found.

        Raises:
            CheckpointFormatError: The pickle is damaged (it ends early,
                pops what it never pushed, reads an unwritten memo entry).
            UnsafeCheckpointError: See the module docstring.
        """
        window, fast = self.window, self.fast
        try:
            while True:
                if window.fill(_AHEAD + 1):
                    buf, i = window.buf, window.i
                    end = len(buf) - _AHEAD
                    while i < end:
                        handler = fast[buf[i]]
                        if handler is None:
                            break
                        after = handler(buf, i + 1)
                        if after < 0:
                            break  # its argument is not all buffered
                        i = after
                    window.i = i
                    if i >= end:
                        continue  # refill
                done = self.step()
                if done is not None:
                    return done
        except IndexError:
            raise CheckpointFormatError(
                'its pickle is damaged: an opcode before offset '
                f'{self.window.tell():,} takes more than the stack holds'
            ) from None
        except UnicodeDecodeError as e:
            raise CheckpointFormatError(
                'its pickle is damaged: a string before offset '
                f'{self.window.tell():,} is not UTF-8 ({e.reason})') from None
        except _TorchRefuses:
            return Scan(False, None)

    def step(self) -> Optional['Scan']:
        """Handle one opcode through the window (near its end, or one with
        an argument of variable size).

        Returns:
            Scan | None: The result when the scan ends here.
        """
        window = self.window
        opcode = window.byte()
        size = _SIZES[opcode]
        if size is not None:
            if not window.fill(size):
                window.truncated(size)
            window.i = self.fast[opcode](window.buf, window.i)
            return None
        handler = self.slow.get(opcode)
        if handler is None:
            return Scan(False, None)  # torch: "Unsupported operand"
        return handler()

    # -- stack ---------------------------------------------------------
    def proto(self, buf: bytes, i: int) -> int:
        """PROTO: the protocol number."""
        return i + 1

    def stop(self) -> 'Scan':
        """STOP: the pickled object is the top entry."""
        return Scan(True, self.stack.pop())

    def mark(self, buf: bytes, i: int) -> int:
        """MARK: later entries form a new stack until the mark is popped."""
        self.marks.append(self.stack)
        self.stack = []
        return i

    def pop_mark(self) -> List[Any]:
        """Returns:
            list: The entries pushed since the last MARK.
        """
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def leaf(self, buf: bytes, i: int) -> int:
        """NONE, NEWTRUE, NEWFALSE."""
        self.stack.append(LEAF)
        return i

    def empty_container(self, buf: bytes, i: int) -> int:
        """EMPTY_DICT, EMPTY_SET."""
        self.stack.append(Slot(1))
        return i

    def empty_list(self, buf: bytes, i: int) -> int:
        """EMPTY_LIST."""
        self.stack.append(KeptList() if self.keep_lists else Slot(1))
        return i

    def empty_tuple(self, buf: bytes, i: int) -> int:
        """EMPTY_TUPLE."""
        self.stack.append(EMPTY_TUPLE)
        return i

    def put(self, buf: bytes, i: int) -> int:
        """BINPUT: the top entry is memoized (a container's stand-in is its
        own, so that what is added to it later counts)."""
        self.memo[buf[i]] = self.stack[-1]
        return i + 1

    def long_put(self, buf: bytes, i: int) -> int:
        """LONG_BINPUT."""
        self.memo[_U32.unpack_from(buf, i)[0]] = self.stack[-1]
        return i + 4

    def get(self, buf: bytes, i: int) -> int:
        """BINGET."""
        slot = self.memo.get(buf[i], _MISSING)
        if slot is _MISSING:
            self.unwritten(buf[i])
        self.stack.append(slot)
        return i + 1

    def long_get(self, buf: bytes, i: int) -> int:
        """LONG_BINGET."""
        index = _U32.unpack_from(buf, i)[0]
        slot = self.memo.get(index, _MISSING)
        if slot is _MISSING:
            self.unwritten(index)
        self.stack.append(slot)
        return i + 4

    def unwritten(self, index: int) -> None:
        """Raises:
            CheckpointFormatError: Always: memo entry ``index`` was never
                written.
        """
        raise CheckpointFormatError(
            f'its pickle reads memo entry {index}, which it never wrote')

    def tuple_of(self, items: List[Any]) -> Any:
        """Args:
            items (list): A tuple's items.

        Returns:
            The tuple's stand-in (items kept when few).
        """
        depth = 1 + deepest(items)
        if depth > limits.MAX_NESTING:
            self.too_deep()
        if len(items) <= KEEP_ITEMS:
            return KeptTuple(tuple(items), depth)
        tensors = [type(item) is TensorValue for item in items]
        return LongTuple(depth, sum(map(hash_cost, items)),
                         sum(size_of(item) for item, tensor in
                             zip(items, tensors) if not tensor),
                         any(tensors))

    def tuple_mark(self, buf: bytes, i: int) -> int:
        """TUPLE: the entries since the last MARK become a tuple."""
        items = self.pop_mark()
        self.stack.append(self.tuple_of(items))
        return i

    def tuple1(self, buf: bytes, i: int) -> int:
        """TUPLE1."""
        item = self.stack[-1]
        depth = getattr(item, 'depth', 0) + 1
        if depth > limits.MAX_NESTING:
            self.too_deep()
        self.stack[-1] = KeptTuple((item, ), depth)
        return i

    def tuple2(self, buf: bytes, i: int) -> int:
        """TUPLE2."""
        return self.tuple_n(2, i)

    def tuple3(self, buf: bytes, i: int) -> int:
        """TUPLE3."""
        return self.tuple_n(3, i)

    def tuple_n(self, n: int, i: int) -> int:
        """The top ``n`` entries become a tuple."""
        if len(self.stack) < n:
            raise IndexError(n)
        items = self.stack[-n:]
        del self.stack[-n:]
        self.stack.append(self.tuple_of(items))
        return i

    def too_deep(self) -> None:
        """Raises:
            UnsafeCheckpointError: Always: nested past the limit.
        """
        raise UnsafeCheckpointError(TOO_DEEP.format(limit=limits.MAX_NESTING))

    def add(self, children: List[Any], entries: int,
            items: bool) -> None:
        """The entry on top takes children (APPEND(S), SETITEM(S), BUILD).

        Args:
            children (list): What it takes.
            entries (int): The entries it gains (its size grows by that).
            items (bool): Whether they are list items (a :class:`KeptList`
                keeps them).
        """
        target = self.stack[-1]
        depth = 1 + deepest(children)
        if depth > limits.MAX_NESTING:
            self.too_deep()
        if type(target) is KeptList and items:
            if len(target.items) + len(children) > limits.MAX_MEMBERS:
                raise UnsafeCheckpointError(
                    'its list of storages holds more than the '
                    f'{limits.MAX_MEMBERS:,} a checkpoint may have')
            target.items.extend(children)
        if type(target) in _MUTABLE:
            target.depth = max(target.depth, depth)
            target.size += entries
        else:  # shared or immutable: a new stand-in on the stack
            self.stack[-1] = Slot(max(depth, getattr(target, 'depth', 0)),
                                  size_of(target) + entries)

    def append(self, buf: bytes, i: int) -> int:
        """APPEND."""
        item = self.stack.pop()
        self.add([item], hash_cost(item), True)
        return i

    def appends(self, buf: bytes, i: int) -> int:
        """APPENDS."""
        children = self.pop_mark()
        self.add(children, sum(map(hash_cost, children)), True)
        return i

    def setitem(self, buf: bytes, i: int) -> int:
        """SETITEM."""
        value, key = self.stack.pop(), self.stack.pop()
        self.add([key, value], self.hash_keys([key]), False)
        return i

    def setitems(self, buf: bytes, i: int) -> int:
        """SETITEMS."""
        children = self.pop_mark()
        self.add(children, self.hash_keys(children[0::2]), False)
        return i

    def hash_keys(self, keys: List[Any]) -> int:
        """Charge the hashing of dict keys (a tuple key, or a
        ``torch.Size``: every item it visits,
        :func:`~.pickle_standins.hash_cost`).

        Returns:
            int: The keys' hash costs (the entries the dict gains, each
            counted as what iterating and hashing it again costs).
        """
        tuples = [key.size + 1 for key in keys if type(key) in HASHES_ITEMS]
        if not tuples:
            return len(keys)
        self.budget.charge(sum(tuples), 'a dict key that is a tuple (hashed)')
        return len(keys) - len(tuples) + sum(tuples)

    def build(self, buf: bytes, i: int) -> int:
        """BUILD: the object on top takes its state (what it copies is
        charged, :meth:`CallCheck.build`)."""
        state = self.stack.pop()
        self.add([state], self.calls.build(state), False)
        return i

    # -- constants -----------------------------------------------------
    def binint(self, buf: bytes, i: int) -> int:
        """BININT: a 4-byte signed int."""
        self.stack.append(_I32.unpack_from(buf, i)[0])
        return i + 4

    def binint1(self, buf: bytes, i: int) -> int:
        """BININT1."""
        self.stack.append(buf[i])
        return i + 1

    def binint2(self, buf: bytes, i: int) -> int:
        """BININT2."""
        self.stack.append(_U16.unpack_from(buf, i)[0])
        return i + 2

    def binfloat(self, buf: bytes, i: int) -> int:
        """BINFLOAT: 8 bytes, not kept."""
        self.stack.append(LEAF)
        return i + 8

    def long1(self) -> None:
        """LONG1: a little-endian two's complement int of up to 255 bytes."""
        data = self.window.read(self.window.byte())
        self.stack.append(int.from_bytes(data, 'little', signed=True))

    def short_text(self, buf: bytes, i: int) -> int:
        """BINUNICODE of a short string that is all buffered (else -1:
        :meth:`binunicode` reads it)."""
        n = _U32.unpack_from(buf, i)[0]
        end = i + 4 + n
        if n > KEEP_TEXT or end > len(buf):
            return -1
        self.text(str(buf[i + 4:end], 'utf-8', 'surrogatepass'))
        return end

    def binunicode(self) -> None:
        """BINUNICODE: a UTF-8 string with a 4-byte length."""
        n = _U32.unpack(self.window.read(4))[0]
        if n > KEEP_TEXT:
            self.window.skip(n)
            self.stack.append(Text(n))
        else:
            self.text(str(self.window.read(n), 'utf-8', 'surrogatepass'))

    def short_binstring(self) -> None:
        """SHORT_BINSTRING: torch.load decodes it as UTF-8."""
        data = self.window.read(self.window.byte())
        self.text(data.decode('utf-8', 'strict'))

    def text(self, text: str) -> None:
        """Push a string, refusing superlinear codec names.

        Raises:
            UnsafeCheckpointError: ``text`` names such a codec.
        """
        self.stack.append(text if len(text) <= KEEP_TEXT else
                          Text(len(text.encode('utf-8', 'surrogatepass'))))
        if len(text) > 40 or '.' in text or text.isdigit() \
                or text in self.seen:
            return  # no codec is named by digits alone
        if len(self.seen) < _SEEN:
            self.seen.add(text)
        if _codec_name(text) in SUPERLINEAR_CODECS:
            raise UnsafeCheckpointError(
                f"it names the codec '{text}', whose decoding time grows "
                'with the square of its input (a few hundred KB hold a '
                'loader for minutes)')

    def global_(self) -> None:
        """GLOBAL: ``module\\nname\\n``, mapped as torch maps it."""
        lines = [self.window.readline(_MAX_GLOBAL_LINE) for _ in range(2)]
        if None in lines:
            self.stack.append(Global('<a name too long to read>'))
            return
        module, name = (line.decode('utf-8') for line in lines)
        if (module, name) in NAME_MAPPING:
            module, name = NAME_MAPPING[(module, name)]
        elif module in IMPORT_MAPPING:
            module = IMPORT_MAPPING[module]
        self.stack.append(Global(f'{module}.{name}'))

    # -- calls ---------------------------------------------------------
    def reduce(self, buf: bytes, i: int) -> int:
        """REDUCE: ``func(*args)``; the result replaces ``func``
        (:meth:`CallCheck.call`)."""
        args = self.stack.pop()
        self.stack[-1] = self.calls.call(self.stack[-1], args)
        return i

    def newobj(self, buf: bytes, i: int) -> int:
        """NEWOBJ: ``cls.__new__(cls, *args)``."""
        args = self.stack.pop()
        self.stack.append(self.calls.call(self.stack.pop(), args))
        return i

    def persistent_id(self, buf: bytes, i: int) -> int:
        """BINPERSID: a storage reference, checked by ``on_storage``.

        Raises:
            _TorchRefuses: torch's unpickler refuses this persistent id.
            UnsafeCheckpointError: The reference is not a literal tuple
                starting with ``'storage'``.
        """
        pid = self.stack.pop()
        if self.on_storage is None:
            raise _TorchRefuses()
        first = pid.items[0] if type(pid) is KeptTuple and pid.items else None
        if isinstance(first, str) and first != 'storage':
            raise _TorchRefuses()
        if first != 'storage':
            raise UnsafeCheckpointError(
                'it holds a storage reference that is not a tuple starting '
                "with 'storage' as torch.save writes them, so its size "
                'cannot be checked before torch allocates it')
        self.on_storage(pid.items[1:])
        key, numel = (pid.items[2], pid.items[4]) if len(pid.items) > 4 \
            else (None, None)
        self.budget.add_storage(key, numel)
        self.stack.append(TensorValue(numel if type(numel) is int else None))
        return i


#: Opcodes torch's weights-only unpickler supports whose argument has a
#: fixed size: the handler and that size.
_FIXED = {
    '\x80': ('proto', 1), '(': ('mark', 0), 'N': ('leaf', 0),
    '\x88': ('leaf', 0), '\x89': ('leaf', 0), ')': ('empty_tuple', 0),
    ']': ('empty_list', 0), '}': ('empty_container', 0),
    '\x8f': ('empty_container', 0), 'J': ('binint', 4), 'K': ('binint1', 1),
    'M': ('binint2', 2), 'G': ('binfloat', 8), 'X': ('short_text', 4),
    'q': ('put', 1),
    'r': ('long_put', 4), 'h': ('get', 1), 'j': ('long_get', 4),
    't': ('tuple_mark', 0), '\x85': ('tuple1', 0), '\x86': ('tuple2', 0),
    '\x87': ('tuple3', 0), 'a': ('append', 0), 'e': ('appends', 0),
    's': ('setitem', 0), 'u': ('setitems', 0), 'b': ('build', 0),
    'R': ('reduce', 0), '\x81': ('newobj', 0), 'Q': ('persistent_id', 0),
}
#: The other supported opcodes: their handler reads through the window
#: (BINUNICODE's fast handler leaves it long or unbuffered strings).
_VARIABLE = {'.': 'stop', 'X': 'binunicode', 'U': 'short_binstring',
             '\x8a': 'long1', 'c': 'global_'}
_SIZES = [None] * 256
for _op, (_, _size) in _FIXED.items():
    _SIZES[ord(_op)] = _size
_SIZES[ord('X')] = None  # the window reads what short_text leaves


def scan_pickle(window: FileWindow,
                on_storage: Optional[Callable[[tuple], None]] = None,
                keep_lists: bool = False,
                seen: Optional[set] = None) -> Scan:
    """Scan one pickle (see the module docstring).

    Args:
        window (FileWindow): The pickle's bytes, read from its first opcode;
            left after its STOP opcode.
        on_storage (callable, optional): Called with the items after
            ``'storage'`` of each storage reference (a tuple of kept entries:
            ``str``, ``int``, stand-ins; see :func:`global_name`); it raises
            to refuse. None: persistent ids stop the scan (torch refuses
            them there).
        keep_lists (bool): Keep list items (``top.items`` of a list).
        seen (set, optional): Strings already checked for codec names,
            shared between pickles of one file.

    Returns:
        Scan: ``complete`` is False when the scan stopped where torch's
        unpickler refuses; ``top`` is the pickled object's stand-in.

    Raises:
        CheckpointFormatError: The pickle is damaged.
        UnsafeCheckpointError: It names a superlinear codec, calls an
            allocating constructor, nests deeper than the limit, or holds a
            storage reference that is not a literal tuple.
    """
    seen = set() if seen is None else seen
    paused = gc.isenabled()
    if paused:  # the stand-ins it keeps would trigger full collections
        gc.disable()
    try:
        return _Scanner(window, on_storage, keep_lists, seen).run()
    finally:
        if paused:
            gc.enable()


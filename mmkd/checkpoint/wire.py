"""The channel from the loader process back to the training process: plain
tagged data, never pickle.

A result is a byte string of opcodes read by a stack machine
(:mod:`.decode`), written by :mod:`.encode`. Each opcode is one byte and
pushes one value (``STORAGE`` pushes none), after popping the values it
names; lengths and counts are unsigned LEB128 varints. Tensor data is not
in it: each storage's bytes lie in a second channel at an offset the
``STORAGE`` opcode gives. Nothing in it names a class or a function: the
reader builds only the types below, so it can neither run code nor (with
the reader's bounds) make more than it is given.
"""
import struct
from typing import Tuple

#: Header of a result: magic, then ``OK`` or ``ERROR``.
MAGIC = b'MMKD\x01'
OK, ERROR = b'K', b'E'
#: Kinds of error the loader reports (``ERROR``, kind, message).
REFUSED, UNPICKLER, MEMORY, DAMAGED = 'refused', 'unpickler', 'memory', \
    'damaged'

# atoms: no pops
NONE, TRUE, FALSE = b'N', b'T', b'F'
INT, FLOAT, COMPLEX = b'I', b'D', b'C'       # signed bytes, <d, <dd
STR, BYTES, BYTEARRAY = b'S', b'B', b'A'     # length, bytes
DTYPE, DEVICE = b'P', b'V'                   # torch.dtype / device name
METHOD = b'h'                                # HistoryBuffer statistic name
NP_DTYPE = b'J'                              # dtype.str
NP_SCALAR = b'K'                             # dtype.str, raw bytes
NP_ARRAY = b'W'                  # dtype.str, fortran, ndim, shape, raw bytes
REF = b'R'                       # index of an earlier value (shared object)
# containers: a count, then pop that many values (dicts: key, value pairs)
LIST, TUPLE, DICT, SET, FROZENSET, SIZE = b'L', b'U', b'M', b'E', b'Z', \
    b'Q'
ORDERED_DICT = b'O'              # count; pops pairs, then its attributes
HISTORY_BUFFER = b'H'            # pops its state (a dict)
# tensors
STORAGE = b'G'                   # offset, bytes, location; pushes nothing
TENSOR = b'X'   # storage, dtype, offset, ndim, sizes, strides, flags; pops
#                 its attributes (dict or None)
SPARSE = b'Y'   # layout, ndim, sizes, coalesced, count; pops that many
#                 tensors (COO: indices, values; compressed: compressed
#                 indices, plain indices, values)
#: TENSOR flags (the last two: the value is the storage, untyped or typed)
REQUIRES_GRAD, PARAMETER, STORAGE_VALUE, TYPED_STORAGE = 1, 2, 4, 8
FLOAT_FORMAT, COMPLEX_FORMAT = struct.Struct('<d'), struct.Struct('<dd')
#: Storages start at multiples of this in the data channel.
ALIGN = 64


def varint(n: int) -> bytes:
    """``n`` (non-negative) as an unsigned LEB128 varint."""
    out = bytearray()
    while True:
        byte, n = n & 0x7f, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def text(s: str) -> bytes:
    """A length-prefixed UTF-8 string (surrogates kept)."""
    raw = s.encode('utf-8', 'surrogatepass')
    return varint(len(raw)) + raw


class MalformedResult(ValueError):
    """The bytes the loader sent back do not follow this format."""


class Reader:
    """Reads a result with bounds on every read.

    Args:
        data (bytes | memoryview): The result.
    """

    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = memoryview(data), 0

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise MalformedResult(
                f'a {n}-byte item at {self.pos} runs past the end '
                f'({len(self.data)} bytes)')
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def varint(self) -> int:
        n = 0
        for shift in range(0, 70, 7):
            byte = self.take(1)[0]
            n |= (byte & 0x7f) << shift
            if not byte & 0x80:
                return n
        raise MalformedResult(f'a varint longer than 10 bytes at {self.pos}')

    def blob(self) -> bytes:
        return bytes(self.take(self.varint()))

    def text(self) -> str:
        try:
            return self.blob().decode('utf-8', 'surrogatepass')
        except UnicodeDecodeError as e:
            raise MalformedResult(f'text that is not UTF-8: {e}') from None

    def struct(self, fmt: struct.Struct) -> Tuple:
        return fmt.unpack(self.take(fmt.size))

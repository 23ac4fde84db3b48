"""The loader's result: JSON (never pickle) of plain values and lists
``[tag, ...]``, whose tables are here; storages' bytes in a second channel."""
import json
from typing import Any

import torch

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

"""The channel from the loader process back: JSON of tagged plain values
(never pickle), storages' bytes in a second channel.

A value is ``None``, a bool, a float, a str, an int below 2**63 or a list
``[tag, ...]``; :data:`CONTAINERS` and the tags in :mod:`.encode` (which
writes them) and :mod:`.decode` (which builds them, with bounds) are the
same. Nothing names a class or a function.
"""
import json
from typing import Any

import torch

MAGIC = b'MMKD\x02'
#: Kinds of error the loader reports.
REFUSED, UNPICKLER, MEMORY, DAMAGED = 'refused', 'unpickler', 'memory', \
    'damaged'
#: tag -> container type whose items follow the tag
CONTAINERS = {'l': list, 't': tuple, 's': set, 'f': frozenset,
              'z': torch.Size}
#: tensor flags
REQUIRES_GRAD, PARAMETER = 1, 2
#: storages start at multiples of this in the data channel
ALIGN = 64


class MalformedResult(ValueError):
    """The loader's result does not follow this format."""


def dumps(result: Any) -> bytes:
    """``result`` as the loader writes it."""
    return MAGIC + json.dumps(result, ensure_ascii=False,
                              separators=(',', ':')).encode(
                                  'utf-8', 'surrogatepass')


def loads(data: bytes) -> Any:
    """What :func:`dumps` wrote."""
    if not data.startswith(MAGIC):
        raise MalformedResult('no magic number')
    try:
        return json.loads(data[len(MAGIC):].decode('utf-8', 'surrogatepass'))
    except (ValueError, RecursionError) as e:
        raise MalformedResult(f'{type(e).__name__}: {e}'[:200]) from None


def raw(data: bytes) -> str:
    """Bytes as JSON text (one character per byte)."""
    return bytes(data).decode('latin-1')

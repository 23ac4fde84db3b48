"""The loader process: confine itself (:mod:`.sandbox`), unpickle one
checkpoint with ``torch.load(weights_only=True)`` and mmkd's allow-list
(:mod:`.allow_list`), and write the result as plain data (:mod:`.encode`).

Forked by :mod:`.loader_server`, which runs with this package loaded under
another name, so nothing of mmkd's but this package's plain modules (nor
mmengine) is imported. CUDA is hidden from it and never initialised: every
storage is read to the CPU, and its saved location is sent back for the
training process's ``map_location``.
"""
import os
import pickle
from typing import Dict, List

import torch

from . import wire
from .allow_list import safe_globals
from .encode import Encoder, Refused
from .sandbox import confine
from .zip_layout import check_layout


def _result(warnings: List[str], body: bytes) -> bytes:
    return wire.MAGIC + wire.varint(len(warnings)) + b''.join(
        wire.text(w) for w in warnings) + body


def _error(kind: str, message: str) -> bytes:
    return wire.ERROR + wire.text(kind) + wire.text(message[:2000])


def _load(args: dict) -> bytes:
    """Unpickle the file and encode it; the result's body."""
    locations: Dict[int, str] = {}

    def record(storage, location):  # torch's map_location=None path
        locations[storage._cdata] = location
        return storage

    torch.serialization.default_restore_location = record

    read = set()
    set_from_file = torch.UntypedStorage._set_from_file

    def record_read(storage, *args):  # the legacy format's storage data
        read.add(storage._cdata)
        return set_from_file(storage, *args)

    torch.UntypedStorage._set_from_file = record_read
    try:
        with os.fdopen(args['file_fd'], 'rb', closefd=False) as f:
            check_layout(f, args['max_extra_members'])
            with torch.serialization.safe_globals(safe_globals()):
                obj = torch.load(f, map_location=None, weights_only=True)
        legacy = os.pread(args['file_fd'], 4, 0) != b'PK\x03\x04'
        if legacy and set(locations) - read:
            raise Refused('it declares a storage but the file holds no data '
                          'for it (a legacy-format file): torch would hand '
                          'back uninitialised memory')
        encoder = Encoder(args['data_fd'], locations, args['max_nesting'])
        encoder.value(obj)
        return wire.OK + bytes(encoder.out)
    except Refused as e:
        return _error(wire.REFUSED, str(e))
    except pickle.UnpicklingError as e:
        return _error(wire.UNPICKLER, str(e))
    except MemoryError:
        return _error(wire.MEMORY, 'MemoryError')
    except Exception as e:  # noqa: BLE001  (every failure is reported)
        text = f'{type(e).__name__}: {e}'
        memory = ("can't allocate memory" in text or 'bad_alloc' in text
                  or 'Cannot allocate memory' in text)
        return _error(wire.MEMORY if memory else wire.DAMAGED, text)


def main(args: dict) -> None:
    """Load the checkpoint ``args`` names (file descriptors and limits) and
    write the result to ``meta_fd``."""
    warnings = confine(args['memory'], args['cpu'], args['output'])
    body = _load(args)
    out = memoryview(_result(warnings, body))
    done = 0
    while done < len(out):
        done += os.write(args['meta_fd'], out[done:])

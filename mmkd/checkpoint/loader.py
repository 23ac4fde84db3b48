"""The loader process: :func:`serve` runs once per training run (a Python
that has imported torch) and forks a loader for each checkpoint, so a load
costs a fork, not a Python start-up.

Each fork closes the socket before it reads a byte of the checkpoint,
confines itself (:mod:`.sandbox`), unpickles with
``torch.load(weights_only=True)`` and mmkd's allow-list, and writes the
result (:mod:`.encode`, :mod:`.wire`). The server answers the fork's pid,
then its exit status and CPU seconds. This package is loaded here under
another name, so neither mmkd nor mmengine is imported; CUDA is hidden, so
storages are read to the CPU and their saved location is sent back.
"""
import errno
import json
import os
import pickle
import socket
import struct

import torch

from . import wire
from .allow_list import restrict_torch_globals, safe_globals
from .encode import Encoder, Refused
from .errors import advice
from .sandbox import confine
from .zip_layout import check_layout

#: pid; then exit status, CPU seconds
PID, STATUS = struct.Struct('<q'), struct.Struct('<qd')


def _output_refused(args: dict) -> dict:
    return {'error': [wire.REFUSED, (
        f'the loader process would write more than its output limit of '
        f'{args["output"] >> 20} MiB (the file size + OUTPUT_BASE). '
        + advice('OUTPUT_BASE'))]}


def _load(args: dict) -> dict:
    """Unpickle the file and encode it."""
    locations, read = {}, set()

    def record(storage, location):  # torch's map_location=None path
        locations[storage._cdata] = location
        return storage

    def record_read(storage, *more):  # the legacy format's storage data
        read.add(storage._cdata)
        return set_from_file(storage, *more)

    set_from_file = torch.UntypedStorage._set_from_file
    torch.serialization.default_restore_location = record
    torch.UntypedStorage._set_from_file = record_read
    try:
        os.lseek(args['file_fd'], 0, os.SEEK_SET)
        with os.fdopen(args['file_fd'], 'rb', closefd=False) as f:
            check_layout(f, args['max_extra_members'])
            with torch.serialization.safe_globals(safe_globals()):
                obj = torch.load(f, map_location=None, weights_only=True)
        if os.pread(args['file_fd'], 4, 0) != b'PK\x03\x04' and \
                set(locations) - read:
            raise Refused('it declares a storage but the file holds no data '
                          'for it (a legacy-format file): torch would hand '
                          'back uninitialised memory')
        return Encoder(args['data_fd'], locations,
                       args['max_nesting']).result(obj)
    except Refused as e:
        return {'error': [wire.REFUSED, str(e)]}
    except pickle.UnpicklingError as e:
        return {'error': [wire.UNPICKLER, str(e)[:2000]]}
    except MemoryError:
        return {'error': [wire.MEMORY, 'MemoryError']}
    except Exception as e:  # noqa: BLE001  (every failure is reported)
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            return _output_refused(args)
        text = f'{type(e).__name__}: {e}'[:2000]
        memory = any(m in text for m in ("can't allocate memory", 'bad_alloc',
                                         'Cannot allocate memory'))
        return {'error': [wire.MEMORY if memory else wire.DAMAGED, text]}


def _main(args: dict) -> None:
    """Confine this process, load and write the result to ``meta_fd``."""
    warnings = confine(args['memory'], args['cpu'], args['output'])
    result = _load(args)
    out = wire.dumps(dict(result, warnings=warnings))
    if len(out) > args['output']:
        out = wire.dumps(dict(_output_refused(args), warnings=warnings))
    out, done = memoryview(out), 0
    while done < len(out):
        done += os.write(args['meta_fd'], out[done:])


def serve(sock_fd: int) -> None:
    """Answer requests on the socket ``sock_fd`` (the loader's arguments as
    JSON, with the checkpoint's, the result's and the data's descriptors)
    until it is closed."""
    sock = socket.socket(fileno=sock_fd)
    restrict_torch_globals()
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        if not message or len(fds) != 3:
            return
        pid = os.fork()
        if pid == 0:
            sock.close()
            code = 1
            try:
                _main(dict(json.loads(message), file_fd=fds[0],
                           meta_fd=fds[1], data_fd=fds[2]))
                code = 0
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        sock.sendall(PID.pack(pid))
        _, status, usage = os.wait4(pid, 0)
        sock.sendall(STATUS.pack(os.waitstatus_to_exitcode(status),
                                 usage.ru_utime + usage.ru_stime))

"""The loader process: :func:`serve` runs once per training run (torch
imported, this package under another name, CUDA hidden) and forks a loader
per checkpoint, which confines itself (:mod:`.sandbox`), unpickles with
``torch.load(weights_only=True)`` and the allow-list, and writes the result
(:mod:`.encode`) or the refusal's message."""
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

STATUS = struct.Struct('<qd')  # exit status, CPU seconds


def _load(args: dict) -> dict:
    """Unpickle the file and encode it (or the error)."""
    locations, read = {}, set()
    set_from_file = torch.UntypedStorage._set_from_file

    def record(storage, location):  # torch's map_location=None path
        locations[storage._cdata] = location
        return storage

    def record_read(storage, *more):  # the legacy format's storage data
        read.add(storage._cdata)
        return set_from_file(storage, *more)

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
            raise Refused('it declares a storage but holds no data for it '
                          '(torch would hand back uninitialised memory)')
        return Encoder(args['data_fd'], locations,
                       args['max_nesting']).result(obj)
    except Refused as e:
        return {'unsafe': str(e)}
    except pickle.UnpicklingError as e:
        text = str(e).split('WeightsUnpickler error:', 1)[-1].split(
            'Check the documentation of torch.load')[0].split(
                ' Please use `torch.serialization')[0]
        return {'unsafe': ('it holds objects outside the allow-list of plain '
                           'types, which could run code: '
                           + ' '.join(text.split()))[:2000]}
    except Exception as e:  # noqa: BLE001  (every failure is reported)
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            return _too_much(args)
        text = ' '.join(f'{type(e).__name__}: {e}'.split()[:40])
        if isinstance(e, MemoryError) or any(m in text for m in (
                "can't allocate memory", 'bad_alloc',
                'Cannot allocate memory')):
            return {'unsafe': (f'unpickling it needed more memory than the '
                               f'limit of {args["memory_text"]}. '
                               + advice('MEMORY_BASE'))}
        return {'damaged': text}


def _too_much(args: dict) -> dict:
    return {'unsafe': (f'its result exceeds the output limit of '
                       f'{args["output"] >> 20} MiB. ' + advice('OUTPUT_BASE'))}


def serve(sock_fd: int) -> None:
    """Fork a loader for each request on the socket ``sock_fd`` (its limits
    as JSON with the checkpoint's, the result's and the data channel's
    descriptors) until the socket is closed."""
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
                args = dict(json.loads(message), file_fd=fds[0],
                            data_fd=fds[2])
                warnings = confine(args['memory'], args['cpu'],
                                   args['output'], args['wall'])
                out = wire.dumps(dict(_load(args), warnings=warnings))
                if len(out) > args['output']:
                    out = wire.dumps(_too_much(args))
                with open(fds[1], 'wb', closefd=False) as f:
                    f.write(out)
                code = 0
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        sock.sendall(STATUS.pack(os.waitstatus_to_exitcode(status),
                                 usage.ru_utime + usage.ru_stime))

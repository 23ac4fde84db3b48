"""The loader process, both ends: :func:`run_loader` hands a checkpoint to
the loader server (started once per process, torch without CUDA), which
forks a confined loader per checkpoint (:func:`serve`); the result comes
back in two memfds, the exit status in a pipe of that load's own."""
import contextlib
import errno
import json
import os
import os.path as osp
import pickle
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from typing import IO, Optional, Tuple

import torch

from . import limits, wire
from .allow_list import restrict_torch_globals, safe_globals
from .encode import Encoder
from .errors import TOO_DEEP, UnsafeCheckpointError, advice
from .sandbox import confine

STATUS = struct.Struct('<qd')  # exit status, CPU seconds
# this package under another name: neither mmkd nor mmengine is imported
_BOOT = ('import sys, types; p = types.ModuleType("_mmkd_loader"); '
         'p.__path__ = [sys.argv[1]]; sys.modules["_mmkd_loader"] = p; '
         'from _mmkd_loader.loader import serve; serve(int(sys.argv[2]))')
_server: Optional[Tuple[subprocess.Popen, socket.socket]] = None
_lock = threading.Lock()
#: zip members torch.save writes, and those of a TorchScript archive
_KNOWN = re.compile(r'^[^/]*/(data\.pkl|\.format_version|version|'
                    r'\.storage_alignment|byteorder|\.data/\w+|data/\w+)$')
_SCRIPTED = re.compile(r'^[^/]*/(code/|constants\.pkl$)')


def _request(message: bytes, fds: list) -> None:
    """Send a load to the server, (re)started if it is not running."""
    global _server
    with _lock:
        if _server is None or _server[0].poll() is not None:
            ours, theirs = socket.socketpair()
            proc = subprocess.Popen(
                [sys.executable, '-c', _BOOT, osp.dirname(osp.abspath(
                    __file__)), str(theirs.fileno())],
                pass_fds=(theirs.fileno(), ), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=dict(
                    os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1'))
            theirs.close()
            _server = (proc, ours)
        socket.send_fds(_server[1], [message], fds)


def _receive(status_fd: int) -> Tuple[int, float]:
    """The loader's exit status and CPU seconds (one small write: it comes
    whole, or the server has ended)."""
    data = os.read(status_fd, STATUS.size)
    if len(data) != STATUS.size:
        raise UnsafeCheckpointError('the loader server ended unexpectedly; '
                                    'try again')
    return STATUS.unpack(data)


def run_loader(file_fd: int, size: int) -> Tuple[dict, int]:
    """Unpickle the open checkpoint ``file_fd`` in a loader process.

    Args:
        file_fd (int): An open descriptor of the file.
        size (int): Its size, for the limits.

    Returns:
        tuple: The loader's result (``warnings``; ``unsafe``, ``damaged``
        or ``storages`` and ``value``) and the data channel (to close).

    Raises:
        UnsafeCheckpointError: A limit was reached, the loader crashed or
            its result is malformed.
    """
    b = limits.budget(size)
    meta_fd = os.memfd_create('mmkd-checkpoint-result')
    data_fd = os.memfd_create('mmkd-checkpoint-tensors')
    status_fd, status_w = os.pipe()
    try:
        try:
            _request(json.dumps(b).encode(),
                     [file_fd, meta_fd, data_fd, status_w])
        finally:
            os.close(status_w)
        code, cpu = _receive(status_fd)
        meta = os.pread(meta_fd, os.fstat(meta_fd).st_size, 0)
        if code == -signal.SIGALRM:
            raise UnsafeCheckpointError(
                f'loading it took longer than {b["wall"]:.0f} s (wall '
                'clock). ' + advice('WALL_BASE'))
        if code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu >= b['cpu'] - 1:
            raise UnsafeCheckpointError(
                f'unpickling it used more than the CPU-time limit of '
                f'{b["cpu"]} s. ' + advice('CPU_BASE'))
        if code != 0 or not meta:
            raise UnsafeCheckpointError(
                f'the loader process crashed (exit status {code}; memory '
                f'limit {b["memory_text"]}). ' + advice('MEMORY_BASE'))
        return wire.loads(meta), data_fd
    except BaseException:
        os.close(data_fd)
        raise
    finally:
        os.close(meta_fd)
        os.close(status_fd)


def _check_layout(file: IO[bytes], max_extra: int) -> None:
    """Refuse a zip that ``torch.save`` would not write (zip bombs,
    overlapping members, TorchScript archives); legacy files pass untouched.

    Args:
        file (file-like): The checkpoint, seekable, at offset 0 (restored).
        max_extra (int): Unknown members allowed.

    Raises:
        ValueError: It is a TorchScript archive.
        UnsafeCheckpointError: The layout is not torch's.
    """
    if file.read(4) != b'PK\x03\x04':
        file.seek(0)
        return
    with zipfile.ZipFile(file) as archive:
        infos, end = archive.infolist(), archive.start_dir
    file.seek(0)
    if any(_SCRIPTED.match(i.filename) for i in infos):
        raise ValueError('it is a TorchScript archive; load it with '
                         'torch.jit.load if you trust it')
    extra = [i.filename for i in infos if not _KNOWN.match(i.filename)]
    if len(extra) > max_extra:
        raise UnsafeCheckpointError(
            f'it holds {len(extra)} members that torch.save does not write '
            f'(e.g. {extra[0]!r:.100}); at most {max_extra} are allowed')
    previous = ('', 0)
    for info in sorted(infos, key=lambda i: i.header_offset):
        name = repr(info.filename)[:200]
        last = info.header_offset + 30 + len(info.filename.encode()) + \
            info.compress_size  # 30: the local header
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsafeCheckpointError(
                f'its member {name} is compressed (deflate or other), which '
                'torch.save never does (a zip bomb inflates so)')
        if last > end:
            raise UnsafeCheckpointError(
                f'its member {name} declares {info.compress_size:,} bytes, '
                f'past the end of the members ({end:,} bytes)')
        if info.header_offset < previous[1]:
            raise UnsafeCheckpointError(
                f'its members {previous[0]} and {name} overlap')
        previous = (name, last)


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
            _check_layout(f, args['max_extra_members'])
            with torch.serialization.safe_globals(safe_globals()):
                obj = torch.load(f, map_location=None, weights_only=True)
        if os.pread(args['file_fd'], 4, 0) != b'PK\x03\x04' and \
                set(locations) - read:
            raise UnsafeCheckpointError(
                'it declares a storage but holds no data for it (torch would '
                'hand back uninitialised memory)')
        return Encoder(args['data_fd'], locations).result(obj)
    except UnsafeCheckpointError as e:
        return {'unsafe': str(e)}
    except RecursionError:  # nesting: the training process bounds it
        return {'unsafe': TOO_DEEP.format(limit=args['max_nesting'])}
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
    """Fork a loader for each request on the socket ``sock_fd`` until it is
    closed: the limits as JSON with the descriptors of the checkpoint, the
    result, the data channel and the load's status pipe."""
    sock = socket.socket(fileno=sock_fd)
    restrict_torch_globals()
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
        if not message or len(fds) != 4:
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
        for fd in fds[:3]:
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        with contextlib.suppress(OSError):  # a load given up: nobody reads
            os.write(fds[3], STATUS.pack(os.waitstatus_to_exitcode(status),
                                         usage.ru_utime + usage.ru_stime))
        os.close(fds[3])

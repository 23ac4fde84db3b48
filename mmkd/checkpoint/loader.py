"""The loader process, both ends: :func:`run_loader`, and :func:`serve`,
which forks a confined loader per load (``docs/checkpoint_safety.md``)."""
import contextlib
import ctypes
import errno
import json
import os
import os.path as osp
import pickle
import platform
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from typing import IO, List, Optional, Tuple

import torch

from . import limits, wire
from .allow_list import restrict_torch_globals, safe_globals
from .errors import TOO_DEEP, UnsafeCheckpointError, advice

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
# seccomp (linux/seccomp.h, linux/filter.h, linux/audit.h)
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_RET_ALLOW, _RET_ERRNO_EACCES = 0x7fff0000, 0x00050000 | 13
_LD_ABS_W, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
#: machine -> (audit arch, socket, io_uring_setup, first number not its)
_ARCHES = {
    'x86_64': (0xc000003e, 41, 425, 0x40000000),
    'aarch64': (0xc00000b7, 198, 425, 0x7fffffff),
}


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
    """The loader's exit status and CPU seconds (a short read: no server)."""
    data = os.read(status_fd, STATUS.size)
    if len(data) != STATUS.size:
        raise UnsafeCheckpointError('the loader server ended unexpectedly; '
                                    'try again')
    return STATUS.unpack(data)


def run_loader(file_fd: int, size: int) -> Tuple[dict, int]:
    """Unpickle the open checkpoint ``file_fd`` in a loader process
    (``UnsafeCheckpointError`` past a limit, on a crash or malformed result).

    Args:
        file_fd (int): An open descriptor of the file.
        size (int): Its size, for the limits.

    Returns:
        tuple: The loader's result (``warnings``; ``unsafe``, ``damaged``
        or ``storages`` and ``value``) and the data channel (to close).
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


def _no_sockets() -> None:
    """Refuse ``socket`` and ``io_uring_setup`` (seccomp); ``OSError`` if
    this machine's ABI is not known or the kernel refuses."""
    machine = platform.machine()
    if machine not in _ARCHES:
        raise OSError(f'no seccomp filter for machine {machine!r}')
    arch, nr_socket, nr_uring, abi_end = _ARCHES[machine]
    program = [  # (code, jump if true, jump if false, k)
        (_LD_ABS_W, 0, 0, 4),                # seccomp_data.arch
        (_JEQ_K, 1, 0, arch),
        (_RET_K, 0, 0, _RET_ERRNO_EACCES),   # another ABI: refuse all
        (_LD_ABS_W, 0, 0, 0),                # seccomp_data.nr
        (_JGE_K, 3, 0, abi_end),             # x32 numbers
        (_JEQ_K, 2, 0, nr_socket),
        (_JEQ_K, 1, 0, nr_uring),
        (_RET_K, 0, 0, _RET_ALLOW),
        (_RET_K, 0, 0, _RET_ERRNO_EACCES),
    ]
    code = ctypes.create_string_buffer(b''.join(
        struct.pack('HBBI', *op) for op in program))
    prog = ctypes.create_string_buffer(struct.pack(  # struct sock_fprog
        '@HP', len(program), ctypes.addressof(code)))
    libc = ctypes.CDLL(None, use_errno=True)
    for args in ((_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                 (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                  ctypes.addressof(prog), 0, 0)):
        if libc.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
            raise OSError(ctypes.get_errno(), f'prctl{args[:2]} failed')


def confine(memory: int, cpu_seconds: int, output: int,
            wall: float = 0) -> List[str]:
    """Put the limits on this process.

    Args:
        memory (int): Bytes it may allocate beyond what it holds now.
        cpu_seconds (int): CPU seconds it may use from now.
        output (int): The largest file it may write, bytes.
        wall (float): Seconds it may run (``SIGALRM`` ends it; 0: no limit).

    Returns:
        list[str]: What could not be applied, for the parent to report.
    """
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + cpu_seconds
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(wall))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    with open('/proc/self/status') as f:  # private writable memory now
        data = int(re.search(r'VmData:\s*(\d+) kB', f.read()).group(1)) << 10
    resource.setrlimit(resource.RLIMIT_DATA, (data + memory, ) * 2)
    missing = []
    try:
        _no_sockets()
    except OSError as e:
        missing.append(f'network not blocked (seccomp: {e})')
    return missing


def _check_layout(file: IO[bytes], max_extra: int) -> None:
    """Refuse a zip that ``torch.save`` would not write (zip bombs,
    overlapping members; ``ValueError`` for a TorchScript archive); legacy
    files pass untouched.

    Args:
        file (file-like): The checkpoint, seekable, at offset 0 (restored).
        max_extra (int): Unknown members allowed.
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
        return wire.Encoder(args['data_fd'], locations).result(obj)
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
    """Fork a loader for each request on the socket ``sock_fd`` (limits as
    JSON; checkpoint, result, data and status descriptors) until it closes."""
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

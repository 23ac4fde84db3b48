"""Run the loader process (:mod:`.loader_child`) on one checkpoint, under
limits the kernel enforces, and collect what it writes back.

The file reaches the loader as an open descriptor; the result comes back
through two anonymous in-memory files (``memfd``): the plain tagged data and
the storages' bytes. Any limit reached ends in
:class:`~mmkd.checkpoint.UnsafeCheckpointError` naming the limit, with what
to do; a loader that crashes is refused the same way.
"""
import json
import os
import os.path as osp
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import List, Optional, Tuple

from . import limits, wire
from .errors import UnsafeCheckpointError
from .loader_server import PID, STATUS

_PACKAGE = osp.dirname(osp.abspath(__file__))
# loads this package under another name, so that neither mmkd nor mmengine
# is imported in the loader server
_BOOT = ('import sys, types; p = types.ModuleType("_mmkd_loader"); '
         'p.__path__ = [sys.argv[1]]; sys.modules["_mmkd_loader"] = p; '
         'from _mmkd_loader.loader_server import serve; '
         'serve(int(sys.argv[2]))')
_server: Optional[Tuple[subprocess.Popen, socket.socket]] = None
_lock = threading.Lock()
_MIB = 1 << 20


def budget(size: int) -> dict:
    """The limits for a file of ``size`` bytes (see :mod:`.limits`)."""
    cpu = limits.CPU_BASE + limits.CPU_PER_GIB * size / (1 << 30)
    return dict(
        memory=int(limits.MEMORY_PER_BYTE * size + limits.MEMORY_BASE),
        cpu=max(1, int(cpu)), output=int(size + limits.OUTPUT_BASE),
        wall=limits.WALL_FACTOR * cpu + limits.WALL_BASE,
        max_nesting=limits.MAX_NESTING, max_extra_members=limits.MAX_EXTRA_MEMBERS)


def _advice(name: str, now: str) -> str:
    return (f'If the file is a checkpoint you trust and it needs more, raise '
            f'mmkd.checkpoint.limits.{name} (now {now}) before loading it')


def _server_socket() -> socket.socket:
    """The loader server's socket, starting the server (once per process,
    again if it has ended)."""
    global _server
    if _server is not None and _server[0].poll() is None:
        return _server[1]
    ours, theirs = socket.socketpair()
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, '-c', _BOOT, _PACKAGE, str(theirs.fileno())],
        pass_fds=(theirs.fileno(), ), env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL)
    theirs.close()
    _server = (proc, ours)
    return ours


def _receive(sock: socket.socket, fmt: struct.Struct,
             timeout: Optional[float]) -> tuple:
    sock.settimeout(timeout)
    data = b''
    while len(data) < fmt.size:
        chunk = sock.recv(fmt.size - len(data))
        if not chunk:
            raise UnsafeCheckpointError(
                'the loader server ended unexpectedly (killed, or out of '
                'memory?); it is started again for the next checkpoint')
        data += chunk
    return fmt.unpack(data)


def _load_in_server(args: dict, fds: Tuple[int, int, int],
                    wall: float) -> Tuple[int, float]:
    """Have the server fork a loader for ``args``; its exit status and CPU
    seconds, killing it after ``wall`` seconds."""
    sock = _server_socket()
    socket.send_fds(sock, [json.dumps(args).encode()], list(fds))
    pid, = _receive(sock, PID, 60.0)
    try:
        return _receive(sock, STATUS, wall)
    except socket.timeout:
        os.kill(pid, signal.SIGKILL)
        _receive(sock, STATUS, 60.0)
        raise UnsafeCheckpointError(
            f'loading it took longer than the wall-clock limit of '
            f'{wall:.0f} s; the loader process was stopped. '
            + _advice('WALL_BASE', f'{limits.WALL_BASE:.0f} s')) from None


def channel_size(fd: int, limit: int) -> int:
    """The bytes in a result channel, at most ``limit``."""
    size = os.fstat(fd).st_size
    if size > limit:  # RLIMIT_FSIZE forbids it; refuse all the same
        raise UnsafeCheckpointError(
            f'the loader process wrote {size:,} bytes, more than its limit '
            f'of {limit:,}')
    return size


def _failure(code: int, cpu: float, b: dict, size: int) -> str:
    """The reason for a loader that ended without a result."""
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu >= b['cpu'] - 1:
        return (f'unpickling it used more than the CPU-time limit of '
                f'{b["cpu"]} s (CPU_BASE + CPU_PER_GIB per GiB of file) and '
                'the loader process was stopped. '
                + _advice('CPU_BASE', f'{limits.CPU_BASE:.0f} s'))
    if code == -signal.SIGXFSZ:
        return (f'the loader process tried to write more than the output '
                f'limit of {b["output"] / _MIB:.0f} MiB (the file size + '
                'OUTPUT_BASE). '
                + _advice('OUTPUT_BASE', f'{limits.OUTPUT_BASE / _MIB:.0f} '
                          'MiB'))
    return (f'the loader process ended with exit status {code} after '
            f'{cpu:.1f} s of CPU and returned nothing (a crash while '
            'unpickling, or a memory limit reached where Python could not '
            f'report it: {memory_limit(b, size)})')


def memory_limit(b: dict, size: int) -> str:
    """The memory limit, stated."""
    return (f'{b["memory"] / _MIB:,.0f} MiB = {limits.MEMORY_PER_BYTE} × '
            f'the file size {size / _MIB:,.1f} MiB + '
            f'{limits.MEMORY_BASE / _MIB:.0f} MiB')


def run_loader(file_fd: int, size: int) -> Tuple[bytes, int, List[str]]:
    """Unpickle the open checkpoint ``file_fd`` (``size`` bytes) in a
    loader process.

    Args:
        file_fd (int): An open descriptor of the file, at offset 0.
        size (int): Its size, for the limits.

    Returns:
        tuple: The tagged data from the loader (from ``OK`` or ``ERROR``
        on), a descriptor of the data channel (the caller closes it) and
        the limits the loader could not apply.

    Raises:
        UnsafeCheckpointError: A limit was reached, or the loader crashed
            or returned something malformed.
    """
    b = budget(size)
    meta_fd = os.memfd_create('mmkd-checkpoint-result')
    data_fd = os.memfd_create('mmkd-checkpoint-tensors')
    try:
        with _lock:
            code, cpu = _load_in_server(b, (file_fd, meta_fd, data_fd),
                                        b['wall'])
        meta = os.pread(meta_fd, channel_size(meta_fd, b['output']), 0)
        if code != 0 or not meta:
            raise UnsafeCheckpointError(_failure(code, cpu, b, size))
    except BaseException:
        os.close(data_fd)
        raise
    finally:
        os.close(meta_fd)
    reader = wire.Reader(meta)
    if bytes(reader.take(len(wire.MAGIC))) != wire.MAGIC:
        os.close(data_fd)
        raise UnsafeCheckpointError('the loader process returned malformed '
                                    'data')
    warnings = [reader.text() for _ in range(reader.varint())]
    return meta[reader.pos:], data_fd, warnings

"""Run the loader process (:mod:`.loader`) on one checkpoint under limits
the kernel enforces, and collect its result: the tagged data and the
storages' bytes, each through an anonymous in-memory file (``memfd``).
A limit reached, or a loader that crashes, ends in
:class:`~mmkd.checkpoint.UnsafeCheckpointError` naming the limit.
"""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import threading
from typing import Optional, Tuple

from . import limits, wire
from .errors import UnsafeCheckpointError, advice
from .loader import PID, STATUS

# loads this package under another name: neither mmkd nor mmengine is
# imported in the loader server
_BOOT = ('import sys, types; p = types.ModuleType("_mmkd_loader"); '
         'p.__path__ = [sys.argv[1]]; sys.modules["_mmkd_loader"] = p; '
         'from _mmkd_loader.loader import serve; serve(int(sys.argv[2]))')
_server: Optional[Tuple[subprocess.Popen, socket.socket]] = None
_lock = threading.Lock()


def budget(size: int) -> dict:
    """The limits for a file of ``size`` bytes (see :mod:`.limits`)."""
    cpu = limits.CPU_BASE + limits.CPU_PER_GIB * size / (1 << 30)
    return dict(
        memory=int(limits.MEMORY_PER_BYTE * size + limits.MEMORY_BASE),
        cpu=max(1, int(cpu)), output=int(size + limits.OUTPUT_BASE),
        wall=limits.WALL_FACTOR * cpu + limits.WALL_BASE,
        max_nesting=limits.MAX_NESTING,
        max_extra_members=limits.MAX_EXTRA_MEMBERS)


def memory_limit(size: int) -> str:
    """The memory limit for a file of ``size`` bytes, stated."""
    return (f'{budget(size)["memory"] / (1 << 20):,.0f} MiB = '
            f'{limits.MEMORY_PER_BYTE} × the file size '
            f'{size / (1 << 20):,.1f} MiB + {limits.MEMORY_BASE >> 20} MiB')


def _server_socket() -> socket.socket:
    """The loader server's socket, starting the server (once per process,
    again if it has ended)."""
    global _server
    if _server is not None and _server[0].poll() is None:
        return _server[1]
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, '-c', _BOOT, osp.dirname(osp.abspath(__file__)),
         str(theirs.fileno())], pass_fds=(theirs.fileno(), ),
        env=dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1'),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    theirs.close()
    _server = (proc, ours)
    return ours


def _receive(sock: socket.socket, fmt, timeout: float) -> tuple:
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


def _run(b: dict, fds: Tuple[int, int, int]) -> Tuple[int, float]:
    """Have the server fork a loader; its exit status and CPU seconds,
    killing it after ``b['wall']`` seconds."""
    sock = _server_socket()
    socket.send_fds(sock, [json.dumps(b).encode()], list(fds))
    pid, = _receive(sock, PID, 60.0)
    try:
        return _receive(sock, STATUS, b['wall'])
    except socket.timeout:
        os.kill(pid, signal.SIGKILL)
        _receive(sock, STATUS, 60.0)
        raise UnsafeCheckpointError(
            f'loading it took longer than the wall-clock limit of '
            f'{b["wall"]:.0f} s; the loader process was stopped. '
            + advice('WALL_BASE')) from None


def channel_size(fd: int, limit: int) -> int:
    """The bytes in a result channel, at most ``limit``."""
    size = os.fstat(fd).st_size
    if size > limit:  # RLIMIT_FSIZE forbids it; refuse all the same
        raise UnsafeCheckpointError(
            f'the loader process wrote {size:,} bytes, more than its limit '
            f'of {limit:,}')
    return size


def run_loader(file_fd: int, size: int) -> Tuple[dict, int]:
    """Unpickle the open checkpoint ``file_fd`` in a loader process.

    Args:
        file_fd (int): An open descriptor of the file.
        size (int): Its size, for the limits.

    Returns:
        tuple: The loader's result (``warnings`` and ``error`` or
        ``storages`` and ``value``) and a descriptor of the data channel,
        which the caller closes.

    Raises:
        UnsafeCheckpointError: A limit was reached, or the loader crashed.
        MalformedResult: Its result does not follow :mod:`.wire`.
    """
    b = budget(size)
    meta_fd = os.memfd_create('mmkd-checkpoint-result')
    data_fd = os.memfd_create('mmkd-checkpoint-tensors')
    try:
        with _lock:
            code, cpu = _run(b, (file_fd, meta_fd, data_fd))
        meta = os.pread(meta_fd, channel_size(meta_fd, b['output']), 0)
        if code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu >= b['cpu'] - 1:
            raise UnsafeCheckpointError(
                f'unpickling it used more than the CPU-time limit of '
                f'{b["cpu"]} s (CPU_BASE + CPU_PER_GIB per GiB of file) and '
                'the loader process was stopped. ' + advice('CPU_BASE'))
        if code != 0 or not meta:
            raise UnsafeCheckpointError(
                f'the loader process ended with exit status {code} after '
                f'{cpu:.1f} s of CPU and returned nothing (a crash while '
                'unpickling, or a memory limit reached where Python could '
                f'not report it: {memory_limit(size)})')
        result = wire.loads(meta)
        if type(result) is not dict:
            raise wire.MalformedResult('not a dict')
        return result, data_fd
    except BaseException:
        os.close(data_fd)
        raise
    finally:
        os.close(meta_fd)

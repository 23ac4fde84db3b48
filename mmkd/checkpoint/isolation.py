"""Run the loader process (:mod:`.loader`) on one checkpoint under limits
the kernel enforces; the result and the storages' bytes come back through
two anonymous in-memory files (``memfd``)."""
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
from .loader import STATUS

# this package under another name: neither mmkd nor mmengine is imported
_BOOT = ('import sys, types; p = types.ModuleType("_mmkd_loader"); '
         'p.__path__ = [sys.argv[1]]; sys.modules["_mmkd_loader"] = p; '
         'from _mmkd_loader.loader import serve; serve(int(sys.argv[2]))')
_server: Optional[Tuple[subprocess.Popen, socket.socket]] = None
_lock = threading.Lock()


def _server_socket() -> socket.socket:
    """The loader server's socket; the server is started once per process
    (again if it has ended)."""
    global _server
    if _server is None or _server[0].poll() is not None:
        ours, theirs = socket.socketpair()
        proc = subprocess.Popen(
            [sys.executable, '-c', _BOOT, osp.dirname(osp.abspath(__file__)),
             str(theirs.fileno())], pass_fds=(theirs.fileno(), ),
            env=dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1'),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        theirs.close()
        _server = (proc, ours)
    return _server[1]


def _receive(sock: socket.socket) -> tuple:
    """The loader's exit status and CPU seconds."""
    data = b''
    while len(data) < STATUS.size:
        chunk = sock.recv(STATUS.size - len(data))
        if not chunk:
            raise UnsafeCheckpointError('the loader server ended '
                                        'unexpectedly; try again')
        data += chunk
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
    try:
        with _lock:
            sock = _server_socket()
            socket.send_fds(sock, [json.dumps(b).encode()],
                            [file_fd, meta_fd, data_fd])
            code, cpu = _receive(sock)
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

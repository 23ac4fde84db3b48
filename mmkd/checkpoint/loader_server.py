"""The loader server: one process per training run that has imported torch
once and forks a fresh loader (:func:`.loader_child.main`) for each
checkpoint, so a load costs a fork, not a Python start-up.

It reads requests from a Unix socket: the loader's arguments (JSON) with
three descriptors (the checkpoint, the result channel, the data channel).
For each it forks; the fork closes the socket before it reads a byte of the
checkpoint (so a loader cannot talk to the training process), confines
itself and loads. The server answers the fork's pid, then its exit status
and CPU seconds. It never reads a checkpoint itself, and exits when the
training process closes the socket.
"""
import json
import os
import socket
import struct

from . import loader_child
from .allow_list import restrict_torch_globals

#: pid; then exit status, CPU seconds
PID, STATUS = struct.Struct('<q'), struct.Struct('<qd')


def serve(sock_fd: int) -> None:
    """Answer requests on the socket ``sock_fd`` until it is closed."""
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
                args = json.loads(message)
                args.update(file_fd=fds[0], meta_fd=fds[1], data_fd=fds[2])
                loader_child.main(args)
                code = 0
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        sock.sendall(PID.pack(pid))
        _, status, usage = os.wait4(pid, 0)
        sock.sendall(STATUS.pack(os.waitstatus_to_exitcode(status),
                                 usage.ru_utime + usage.ru_stime))

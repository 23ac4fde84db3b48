"""The limits the loader process puts on itself before it reads a byte of
the checkpoint (:func:`confine`); the kernel enforces them from then on:

- memory: ``RLIMIT_DATA`` (heap and private mappings) = what it holds now +
  the allowance. Not ``RLIMIT_AS``: a CUDA build of torch maps gigabytes of
  address space it never touches;
- CPU time: ``RLIMIT_CPU``; output: ``RLIMIT_FSIZE`` on every file it
  writes (a write past it fails with ``EFBIG``); no core dumps;
- no network: a seccomp filter makes ``socket(2)`` and ``io_uring_setup(2)``
  fail (x86-64 and aarch64; other ABIs refused outright). Where seccomp is
  not available this is reported, not ignored.
"""
import ctypes
import platform
import resource
import signal
import struct
from typing import List

# seccomp (linux/seccomp.h, linux/filter.h, linux/audit.h)
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_RET_ALLOW, _RET_ERRNO_EACCES = 0x7fff0000, 0x00050000 | 13
_LD_ABS_W, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
#: machine -> (audit arch, socket, io_uring_setup, first number not its)
_ARCHES = {
    'x86_64': (0xc000003e, 41, 425, 0x40000000),
    'aarch64': (0xc00000b7, 198, 425, 0x7fffffff),
}


def _data_bytes() -> int:
    """The process's private writable memory now (``VmData``)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmData:'):
                return int(line.split()[1]) * 1024
    raise OSError('/proc/self/status has no VmData line')


def _no_sockets() -> None:
    """Refuse ``socket`` and ``io_uring_setup`` (seccomp).

    Raises:
        OSError: This machine's ABI is not known, or the kernel refuses.
    """
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
    code = b''.join(struct.pack('HBBI', *op) for op in program)
    buffer = ctypes.create_string_buffer(code, len(code))

    class Program(ctypes.Structure):
        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]

    prog = Program(len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    for args in ((_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                 (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                  ctypes.addressof(prog), 0, 0)):
        if libc.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
            raise OSError(ctypes.get_errno(), f'prctl{args[:2]} failed')


def confine(memory: int, cpu_seconds: int, output: int) -> List[str]:
    """Put the limits on this process.

    Args:
        memory (int): Bytes it may allocate beyond what it holds now.
        cpu_seconds (int): CPU seconds it may use from now.
        output (int): The largest file it may write, bytes.

    Returns:
        list[str]: What could not be applied, for the parent to report.
    """
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + cpu_seconds
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_DATA, (_data_bytes() + memory, ) * 2)
    missing = []
    try:
        _no_sockets()
    except OSError as e:
        missing.append(f'network not blocked (seccomp: {e})')
    return missing

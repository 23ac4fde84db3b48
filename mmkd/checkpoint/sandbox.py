"""The limits the loader puts on itself before it reads a byte: memory
(``RLIMIT_DATA``: a CUDA build maps gigabytes of address space it never
touches), CPU time, output (``EFBIG`` past it), no core dumps, no network
(seccomp: ``socket`` and ``io_uring_setup`` fail; reported if it cannot)."""
import ctypes
import platform
import re
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

"""Load one checkpoint file as untrusted input: unpickled in a confined
loader process (:mod:`.loader`), built here with bounds (:mod:`.decode`)."""
import logging
import os
import os.path as osp
import shutil
import stat
from typing import IO, Any, Callable, Optional, Union

from mmengine.logging import print_log

from .decode import decode
from .errors import (NEVER_SWITCH_OFF, CheckpointFormatError,
                     UnsafeCheckpointError)
from .loader import run_loader

_warned = set()


def _check_format(head: bytes, what: str, name: str) -> None:
    """Refuse a file whose first bytes ``head`` are not torch's zip or
    legacy format (empty, an HTML page, anything else)."""
    if head == b'PK\x03\x04' or head.startswith(b'\x80\x02'):
        return
    found = 'is empty (an interrupted download or save?)' if not head else (
        f'is not a PyTorch checkpoint: it starts with {head!r}, ' + (
            'an HTML page (a login or error page saved instead of the '
            'file?)' if head.lstrip()[:1] == b'<' else 'not a PyTorch file'))
    raise CheckpointFormatError(f'{what}: {name} {found}. Give the path of a '
                                'complete file written by torch.save.')


def _file_fd(file: IO[bytes]) -> int:
    """A descriptor of ``file``'s bytes from its current position: its own
    (duplicated) for a regular file at offset 0, else a copy in a memfd."""
    try:
        if file.tell() == 0 and stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return os.dup(file.fileno())
    except (OSError, AttributeError, ValueError):
        pass
    copy = os.memfd_create('mmkd-checkpoint-file')
    with open(copy, 'wb', closefd=False) as out:
        shutil.copyfileobj(file, out, 1 << 20)
    return copy


def safe_torch_load(file: Union[str, IO[bytes]],
                    map_location: Optional[Union[str, Callable]] = 'cpu',
                    what: str = 'checkpoint') -> Any:
    """Load an untrusted checkpoint: ``torch.load(weights_only=True)`` with
    mmkd's allow-list, in a confined loader process.

    Args:
        file (str | file-like): A local path or an open binary file.
        map_location (str | callable, optional): As in ``torch.load``.
        what (str): What is loaded and the config key that named it, for
            messages (e.g. ``'teacher checkpoint (model.teacher_checkpoint)'``).

    Raises:
        FileNotFoundError: ``file`` is a path that does not exist.
        CheckpointFormatError: The file is not a readable PyTorch checkpoint.
        UnsafeCheckpointError: It holds a global outside the allow-list, or
            loading it exceeds a limit or bound (:mod:`.limits`).
    """
    if isinstance(file, str):
        path = osp.expanduser(file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{what}: no such file: {file}. Check the path (relative '
                f'paths start from {os.getcwd()}).')
        with open(path, 'rb') as f:
            return safe_torch_load(f, map_location, what)
    name = getattr(file, 'name', '<file object>')
    fd, data_fd = _file_fd(file), None
    try:
        size = os.fstat(fd).st_size
        _check_format(os.pread(fd, 4, 0), what, name)
        result, data_fd = run_loader(fd, size)
        for warning in set(map(str, result.get('warnings', ()))) - _warned:
            _warned.add(warning)
            print_log(f'mmkd: checkpoints are loaded in a separate process, '
                      f'but here: {warning}. See docs/checkpoint_safety.md.',
                      logger='current', level=logging.WARNING)
        if 'unsafe' in result:
            raise UnsafeCheckpointError(str(result['unsafe']))
        if 'damaged' in result:
            raise CheckpointFormatError(
                f'{what}: {name} is not a readable PyTorch checkpoint '
                f'(truncated or damaged?): {str(result["damaged"])[:2000]}. '
                'Download or copy it again.')
        return decode(result, data_fd, os.fstat(data_fd).st_size, size,
                      map_location)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(
            f'Refusing to load {what} {name}: {str(e).rstrip(".")}.\n'
            f'{NEVER_SWITCH_OFF}') from None
    finally:
        for channel in (fd, data_fd):
            if channel is not None:
                os.close(channel)

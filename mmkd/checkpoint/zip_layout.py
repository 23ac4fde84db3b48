"""A zip checkpoint that ``torch.save`` would not write is refused before
torch reads it (zip bombs, overlapping members, TorchScript archives)."""
import re
import zipfile
from typing import IO

from .encode import Refused

_KNOWN = re.compile(r'^[^/]*/(data\.pkl|\.format_version|version|'
                    r'\.storage_alignment|byteorder|\.data/\w+|data/\w+)$')
_SCRIPTED = re.compile(r'^[^/]*/(code/|constants\.pkl$)')


def check_layout(file: IO[bytes], max_extra: int) -> None:
    """Check a zip checkpoint's directory; legacy files pass untouched.

    Args:
        file (file-like): The checkpoint, seekable, at offset 0 (restored).
        max_extra (int): Unknown members allowed.

    Raises:
        ValueError: It is a TorchScript archive.
        Refused: The layout is not torch's.
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
        raise Refused(f'it holds {len(extra)} members that torch.save does '
                      f'not write (e.g. {extra[0]!r:.100}); at most '
                      f'{max_extra} are allowed')
    previous = ('', 0)
    for info in sorted(infos, key=lambda i: i.header_offset):
        name = repr(info.filename)[:200]
        last = info.header_offset + 30 + len(info.filename.encode()) + \
            info.compress_size  # 30: the local header
        if info.compress_type != zipfile.ZIP_STORED:
            raise Refused(f'its member {name} is compressed (deflate or '
                          'other), which torch.save never does (a zip bomb '
                          'inflates so)')
        if last > end:
            raise Refused(f'its member {name} declares '
                          f'{info.compress_size:,} bytes, past the end of '
                          f'the members ({end:,} bytes)')
        if info.header_offset < previous[1]:
            raise Refused(f'its members {previous[0]} and {name} overlap')
        previous = (name, last)

"""What the loader process checks of a zip checkpoint's layout before
torch reads it (Python's ``zipfile`` reads the directory; the process's
limits bound what a crafted directory costs).

``torch.save`` writes every member stored (not compressed), each once, one
after another, and only the pickle, the storage records and a few metadata
records. A compressed member (a zip bomb inflates gigabytes from a few MB),
members that overlap (torch reads the same bytes as many storages) or run
past the members' end, and many members torch never writes are refused.
"""
import re
import zipfile
from typing import IO

from .encode import Refused

#: Names torch writes besides ``data/<key>`` records, under the archive's
#: folder.
_METADATA = re.compile(r'^[^/]*/(data\.pkl|\.format_version|version|'
                       r'\.storage_alignment|byteorder|\.data/\w+)$')
_SCRIPTED = re.compile(r'^[^/]*/(code/|constants\.pkl$)')
_RECORD = re.compile(r'^[^/]*/data/\w+$')


def check_layout(file: IO[bytes], max_extra: int) -> None:
    """Refuse a zip checkpoint torch's writer would not produce; legacy
    files pass untouched. The file's position is restored.

    Args:
        file (file-like): The checkpoint, seekable.
        max_extra (int): Members besides the pickle, storage records and
            torch's metadata records that are allowed.

    Raises:
        ValueError: It is a TorchScript archive.
        Refused: A compressed, overlapping or oversized member, or too many
            unknown members.
    """
    start = file.tell()
    if file.read(4) != b'PK\x03\x04':
        file.seek(start)
        return
    file.seek(start)
    with zipfile.ZipFile(file) as archive:
        infos = archive.infolist()
        end = archive.start_dir
    file.seek(start)
    if any(_SCRIPTED.match(i.filename) for i in infos):
        raise ValueError(
            'it is a TorchScript archive (torch.jit.save), not a checkpoint; '
            'load it with torch.jit.load if you trust it, or save the '
            "model's state_dict() with torch.save")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise Refused(
                f'its member {info.filename!r:.200} is compressed (deflate '
                f'or other, type {info.compress_type}); torch.save never '
                'compresses, and a compressed member may inflate to far '
                'more than the file')
    extra = [i.filename for i in infos if not (
        _RECORD.match(i.filename) or _METADATA.match(i.filename))]
    if len(extra) > max_extra:
        raise Refused(
            f'it holds {len(extra)} members that torch.save does not write '
            f'(e.g. {extra[0]!r:.100}); at most {max_extra} are allowed')
    previous = None
    for info in sorted(infos, key=lambda i: i.header_offset):
        # 30: local header; the name and extra fields follow it
        first = info.header_offset
        last = first + 30 + len(info.filename.encode()) + info.compress_size
        if last > end:
            raise Refused(
                f'its member {info.filename!r:.200} declares '
                f'{info.compress_size:,} bytes, past the end of the members '
                f'(the file holds {end:,} bytes of them)')
        if previous is not None and first < previous[1]:
            raise Refused(
                f'its members {previous[0]!r:.200} and {info.filename!r:.200}'
                ' overlap (the same bytes read as two records)')
        previous = (info.filename, last)

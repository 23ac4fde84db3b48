"""The layout of a zip checkpoint, checked before anything in it is inflated
or allocated: :func:`read_zip_layout`.

``torch.save`` writes a zip archive whose members are all *stored*
(uncompressed), one after another: ``<archive>/data.pkl`` (the pickle),
``<archive>/data/<key>`` (one record per storage) and a few small metadata
records. torch's reader (miniz) would also inflate compressed members, and it
allocates each member at the size the central directory declares, so a
3 MB file whose pickle member is deflate-compressed inflates to 3 GB, and
overlapping members let a small file declare the same bytes many times.

This module reads the end records, the central directory (streamed, at most
:data:`~mmkd.checkpoint.limits.MAX_MEMBERS` members) and each member's local
header, and refuses an archive unless every member is stored, lies inside the
file before the central directory, and overlaps no other. Then every member
torch reads costs at most its own bytes, and all of them together at most the
file's size.
"""
import struct
from typing import IO, Dict, List, NamedTuple, Optional, Tuple

from . import limits
from .errors import CheckpointFormatError, UnsafeCheckpointError
from .window import FileWindow

_EOCD = struct.Struct('<4s4H2LH')  # end of central directory, 22 bytes
_EOCD64_LOCATOR = struct.Struct('<4sLQL')  # 20 bytes
_EOCD64 = struct.Struct('<4sQ2H2L4Q')  # zip64 end of central directory
_CENTRAL = struct.Struct('<4s6H3L5H2L')  # central directory entry, 46 bytes
_LOCAL = struct.Struct('<4s5H3L2H')  # local file header, 30 bytes
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF
_ZIP64_FIELD = 0x0001
_METHODS = {8: 'deflate', 9: 'deflate64', 12: 'bzip2', 14: 'lzma',
            93: 'zstandard', 95: 'xz'}

#: Said after each refusal of a layout.
REMEDY = ('Nothing in the file has been inflated or allocated. Use a '
          'checkpoint as torch.save wrote it (re-zipping or editing one '
          'changes its layout); if this one came that way, download or copy '
          'it again.')


class Member(NamedTuple):
    """One stored member: where its bytes are."""
    name: str  # as written, for messages
    data_start: int  # file position of its first byte
    size: int  # its bytes


class ZipLayout(NamedTuple):
    """A zip checkpoint's members, checked."""
    prefix: bytes  # the archive folder every torch record is under
    members: Dict[bytes, Member]  # by lower-cased name, as miniz finds them

    def record(self, name: str) -> Optional[Member]:
        """The member torch reads for ``name`` (``'data.pkl'``,
        ``'data/0'``): miniz looks names up case-insensitively.

        Args:
            name (str): A record name inside the archive folder.

        Returns:
            Member | None: The member, or None when there is none.
        """
        key = self.prefix + b'/' + name.encode('utf-8', 'surrogatepass')
        return self.members.get(key.lower())


def _show(name: bytes) -> str:
    text = name.decode('utf-8', 'replace')
    return repr(text if len(text) <= 100 else text[:100] + '...')


def _refuse(reason: str) -> None:
    raise UnsafeCheckpointError(f'{reason}. {REMEDY}')


def _read_at(file: IO[bytes], position: int, n: int) -> bytes:
    file.seek(position)
    return file.read(n)


def _end_records(file: IO[bytes], start: int,
                 size: int) -> Tuple[int, int, int, int]:
    """Find the end of central directory record (and its zip64 form).

    Args:
        file (file-like): The checkpoint.
        start (int): File position of the archive's first byte.
        size (int): Bytes from ``start`` to the end of the file.

    Returns:
        tuple: ``(entries, cd_offset, cd_size, end_offset)``: the members the
        central directory declares, where it starts and its size, and where
        the end records start (where the central directory must end).
        Offsets are relative to ``start``.

    Raises:
        CheckpointFormatError: There is no end record (a truncated file).
        UnsafeCheckpointError: The end records disagree with each other.
    """
    tail_size = min(size, _EOCD.size + _MAX16)
    tail = _read_at(file, start + size - tail_size, tail_size)
    found = tail.rfind(b'PK\x05\x06')
    if found < 0 or found + _EOCD.size > len(tail):
        raise CheckpointFormatError(
            'it has no zip end record: the end of the file is missing '
            '(an interrupted download or copy?)')
    (_, disk, cd_disk, disk_entries, entries, cd_size, cd_offset,
     comment) = _EOCD.unpack_from(tail, found)
    eocd = size - tail_size + found
    if eocd + _EOCD.size + comment != size:
        raise CheckpointFormatError(
            f'its zip end record at offset {eocd:,} declares a comment of '
            f'{comment:,} bytes, but the file has {size - eocd - 22:,} more')
    end_offset = eocd
    locator = _read_at(file, start + eocd - _EOCD64_LOCATOR.size,
                       _EOCD64_LOCATOR.size) if eocd >= 20 else b''
    if locator[:4] == b'PK\x06\x07':
        _, _, eocd64, _ = _EOCD64_LOCATOR.unpack(locator)
        record = _read_at(file, start + eocd64, _EOCD64.size) \
            if eocd64 + _EOCD64.size <= eocd else b''
        if len(record) < _EOCD64.size or record[:4] != b'PK\x06\x06':
            _refuse(f'its zip64 end locator points at offset {eocd64:,}, '
                    'where there is no zip64 end record')
        (_, length, _, _, disk64, cd_disk64, disk_entries64, entries64,
         cd_size64, cd_offset64) = _EOCD64.unpack(record)
        if eocd64 + 12 + length != eocd - _EOCD64_LOCATOR.size:
            _refuse(f'its zip64 end record declares {length:,} bytes, which '
                    'do not end where its locator starts')
        for short, full, escape in ((entries, entries64, _MAX16),
                                    (cd_size, cd_size64, _MAX32),
                                    (cd_offset, cd_offset64, _MAX32)):
            if short not in (full, escape):
                _refuse('its zip end record and zip64 end record disagree '
                        f'({short:,} against {full:,})')
        disk, cd_disk, disk_entries = disk64, cd_disk64, disk_entries64
        entries, cd_size, cd_offset = entries64, cd_size64, cd_offset64
        end_offset = eocd64
    if disk or cd_disk or disk_entries != entries:
        _refuse('it declares a zip archive spread over several disks, which '
                'torch.save never writes')
    return entries, cd_offset, cd_size, end_offset


def _zip64_values(extra: bytes, wanted: List[bool],
                  name: bytes) -> List[int]:
    """The 64-bit sizes and offset of a central directory entry.

    Args:
        extra (bytes): The entry's extra field.
        wanted (list[bool]): Which of (uncompressed size, compressed size,
            header offset) the entry escaped to the zip64 field.
        name (bytes): The member's name, for messages.

    Returns:
        list[int]: The escaped values, in that order.

    Raises:
        UnsafeCheckpointError: The zip64 field is missing or too short.
    """
    i = 0
    while i + 4 <= len(extra):
        field, length = struct.unpack_from('<2H', extra, i)
        if field == _ZIP64_FIELD:
            count = sum(wanted)
            if length < 8 * count or i + 4 + length > len(extra):
                break
            return list(struct.unpack_from(f'<{count}Q', extra, i + 4))
        i += 4 + length
    _refuse(f'its member {_show(name)} escapes its sizes to a zip64 field '
            'that it does not have')


def _central_directory(file: IO[bytes], start: int, cd_offset: int,
                       cd_size: int, entries: int,
                       size: int) -> Tuple[List[Tuple[bytes, int, int]], str]:
    """Read the central directory entry by entry, refusing encrypted or
    oversized members as they come (nothing is read from the members).

    Args:
        file (file-like): The checkpoint.
        start (int): File position of the archive's first byte.
        cd_offset (int): Where the central directory starts.
        cd_size (int): Its bytes.
        entries (int): The members it declares.
        size (int): The file's bytes from ``start``.

    Returns:
        tuple: ``(name, header_offset, size)`` per member, in directory
        order, and the reason to refuse the first compressed member ('' when
        none is).

    Raises:
        UnsafeCheckpointError: A member is encrypted, declares more bytes
            than the file, or the directory's entries do not fill exactly
            its declared size.
    """
    window = FileWindow(file, start + cd_offset, start + cd_offset + cd_size,
                        'the zip central directory')
    found, compressed_member = [], ''
    for _ in range(entries):
        if not window.fill(_CENTRAL.size):
            window.truncated(_CENTRAL.size)
        (signature, _, _, flags, method, _, _, _, compressed, stored,
         name_len, extra_len, comment_len, disk, _, _,
         header) = _CENTRAL.unpack_from(window.buf, window.i)
        window.i += _CENTRAL.size
        if signature != b'PK\x01\x02':
            _refuse(f'its central directory holds {len(found):,} members '
                    f'where its end record declares {entries:,}')
        if name_len > limits.MAX_NAME_BYTES:
            _refuse(f'a member name of {name_len:,} bytes is longer than '
                    f'the {limits.MAX_NAME_BYTES:,} a checkpoint may use')
        name = window.read(name_len)
        wanted = [stored == _MAX32, compressed == _MAX32, header == _MAX32]
        if any(wanted):
            values = iter(_zip64_values(window.read(extra_len), wanted,
                                        name))
            stored = next(values) if wanted[0] else stored
            compressed = next(values) if wanted[1] else compressed
            header = next(values) if wanted[2] else header
        else:
            window.skip(extra_len)
        window.skip(comment_len)
        if (method != 0 or compressed != stored) and not compressed_member:
            kind = _METHODS.get(method, f'method {method}')
            compressed_member = (
                f'its member {_show(name)} is compressed ({kind}: '
                f'{compressed:,} bytes in the file that inflate to '
                f'{stored:,}), but torch.save stores every member '
                'uncompressed; a compressed member is how a file of a few MB '
                'inflates to GB in memory')
        if flags & 1:
            _refuse(f'its member {_show(name)} is encrypted, which '
                    'torch.save never writes')
        if stored > size and not compressed_member:
            _refuse(f'its member {_show(name)} declares {stored:,} bytes, '
                    f'more than the whole file ({size:,} bytes)')
        if disk:
            _refuse(f'its member {_show(name)} is on another disk, which '
                    'torch.save never writes')
        found.append((name, header, stored))
    filled = window.tell() - start - cd_offset
    if window.tell() != window.end:
        _refuse(f'its central directory declares {cd_size:,} bytes, but its '
                f'{entries:,} members fill {filled:,}')
    return found, compressed_member


def _members(file: IO[bytes], start: int, entries: List[Tuple[bytes, int,
                                                                int]],
             cd_offset: int) -> Dict[bytes, Member]:
    """Locate each member's data from its local header, and refuse members
    that run past the members' area or overlap.

    Args:
        file (file-like): The checkpoint.
        start (int): File position of the archive's first byte.
        entries (list): ``(name, header_offset, size)`` per member.
        cd_offset (int): Where the members' area ends (the central
            directory starts).

    Returns:
        dict: Lower-cased name -> :class:`Member`.

    Raises:
        UnsafeCheckpointError: A member has no local header, runs past the
            members' area, overlaps another, or two share a name.
    """
    members: Dict[bytes, Member] = {}
    previous, previous_end = None, 0
    # small pieces: the headers of small members share one, a large
    # member's data is skipped without being read
    headers = FileWindow(file, start, start + cd_offset, 'the members',
                         piece=4096)
    for name, header, size in sorted(entries, key=lambda e: e[1]):
        if header < previous_end:
            _refuse(f'its members {_show(previous)} and {_show(name)} '
                    f'overlap: {_show(name)} starts at offset {header:,}, '
                    f'inside {_show(previous)} (which runs to offset '
                    f'{previous_end:,}); torch.save writes members one after '
                    'another, and overlapping members are how a small file '
                    'declares the same bytes many times')
        local = b''
        if header + _LOCAL.size <= cd_offset:
            headers.skip(start + header - headers.tell())
            local = headers.read(_LOCAL.size)
        if local[:4] != b'PK\x03\x04':
            _refuse(f'its member {_show(name)} has no local header at offset '
                    f'{header:,}')
        name_len, extra_len = struct.unpack_from('<2H', local, 26)
        data_start = header + _LOCAL.size + name_len + extra_len
        if data_start + size > cd_offset:
            _refuse(f'its member {_show(name)} declares {size:,} bytes from '
                    f'offset {data_start:,}, past the end of the members at '
                    f'offset {cd_offset:,} (where the central directory '
                    'starts)')
        key = name.lower()
        if key in members:
            _refuse(f'two of its members are named {_show(name)} (names are '
                    'matched regardless of case)')
        members[key] = Member(name.decode('utf-8', 'replace'),
                              start + data_start, size)
        previous, previous_end = name, data_start + size
    return members


def read_zip_layout(file: IO[bytes]) -> ZipLayout:
    """Read and check the layout of the zip checkpoint at ``file``'s
    position, reading only its end records, its central directory and its
    members' local headers.

    Args:
        file (file-like): Open in binary mode, seekable, at the archive's
            first byte; its position is not restored.

    Returns:
        ZipLayout: The archive folder and the members.

    Raises:
        CheckpointFormatError: The file is truncated or is not a torch zip
            checkpoint (no end record, no ``data.pkl``, a TorchScript
            archive).
        UnsafeCheckpointError: A member is compressed, larger than the file,
            outside the members' area or overlapping another; there are more
            members than :data:`~mmkd.checkpoint.limits.MAX_MEMBERS`; or the
            archive's records disagree.
    """
    start = file.tell()
    size = file.seek(0, 2) - start
    entries, cd_offset, cd_size, end_offset = _end_records(file, start, size)
    if entries > limits.MAX_MEMBERS:
        _refuse(f'its central directory declares {entries:,} members, more '
                f'than the {limits.MAX_MEMBERS:,} a checkpoint may hold '
                '(mmkd.checkpoint.limits.MAX_MEMBERS; torch.save writes one '
                'per storage and five more)')
    if cd_offset + cd_size != end_offset or cd_size < entries * _CENTRAL.size:
        _refuse(f'its central directory ({entries:,} members in '
                f'{cd_size:,} bytes from offset {cd_offset:,}) does not end '
                f'where its end record starts (offset {end_offset:,})')
    listed, compressed_member = _central_directory(
        file, start, cd_offset, cd_size, entries, size)
    first = listed[0][0] if listed else b''
    if b'/' not in first:
        raise CheckpointFormatError(
            f'its first member {_show(first)} is not inside an archive '
            'folder, as torch.save writes them')
    prefix = first.split(b'/', 1)[0]
    if any(name.lower() == prefix.lower() + b'/constants.pkl'
           for name, _, _ in listed):
        raise CheckpointFormatError(
            'it is a TorchScript archive (torch.jit.save), not a checkpoint '
            'of weights; load the model with torch.jit.load where you trust '
            'it and save its state_dict()')
    if compressed_member:
        _refuse(compressed_member)
    layout = ZipLayout(prefix, _members(file, start, listed, cd_offset))
    if layout.record('data.pkl') is None:
        raise CheckpointFormatError(
            f'it has no {_show(layout.prefix + b"/data.pkl")} member: it is '
            'a zip archive, but not one torch.save wrote')
    return layout

"""Checkpoints an attacker would craft, for the tests and benchmarks of
mmkd's safe loading (:mod:`mmkd.checkpoint`)."""
import io
import os.path as osp
import struct
import zipfile
import zlib

import torch

# zip records: local header, central directory entry, end of central
# directory (APPNOTE 4.3.7, 4.3.12, 4.3.16)
_LOCAL = struct.Struct('<4s5H3L2H')
_CENTRAL = struct.Struct('<4s6H3L5H2L')
_EOCD = struct.Struct('<4s4H2LH')
_CHUNK = 1 << 20


def write_zip_bomb(path: str, inflated: int) -> None:
    """Write a real ``torch.save`` file whose ``data.pkl`` member is
    deflate-compressed and padded after its STOP opcode with zeros to
    ``inflated`` bytes (a multiple of 1 MiB, at least 2 MiB).

    The compressed stream is built one 1 MiB piece at a time (after a full
    flush every piece of zeros compresses to the same bytes), so neither this
    function nor the file holds what it inflates to: 3 GiB take a 3.2 MB
    file.

    Args:
        path (str): The file to write.
        inflated (int): The size ``data.pkl`` declares and inflates to.
    """
    buf = io.BytesIO()
    torch.save({'w': torch.arange(4.)}, buf)
    with zipfile.ZipFile(buf) as source, open(path, 'wb') as out:
        entries = []
        for info in source.infolist():
            data, raw = source.read(info), info.filename.encode()
            offset, method = out.tell(), 0
            if raw.endswith(b'data.pkl'):
                method, full, zeros = 8, inflated // _CHUNK * _CHUNK, \
                    bytes(_CHUNK)
                deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
                first = data + bytes(_CHUNK - len(data))
                pieces = [deflate.compress(first)
                          + deflate.flush(zlib.Z_FULL_FLUSH)]
                pieces.append(deflate.compress(zeros)
                              + deflate.flush(zlib.Z_FULL_FLUSH))
                tail = deflate.compress(zeros) + deflate.flush()
                count = full // _CHUNK
                crc = zlib.crc32(first)
                for _ in range(count - 1):
                    crc = zlib.crc32(zeros, crc)
                size = len(pieces[0]) + len(pieces[1]) * (count - 2) + \
                    len(tail)
                out.write(_LOCAL.pack(b'PK\x03\x04', 20, 0, 8, 0, 0, crc, size,
                                      full, len(raw), 0) + raw + pieces[0])
                for _ in range(count - 2):
                    out.write(pieces[1])
                out.write(tail)
            else:
                crc, size, full = zlib.crc32(data), len(data), len(data)
                out.write(_LOCAL.pack(b'PK\x03\x04', 20, 0, 0, 0, 0, crc, size,
                                      full, len(raw), 0) + raw + data)
            entries.append((raw, offset, method, crc, size, full))
        directory = out.tell()
        for raw, offset, method, crc, size, full in entries:
            out.write(_CENTRAL.pack(b'PK\x01\x02', 20, 20, 0, method, 0, 0,
                                    crc, size, full, len(raw), 0, 0, 0, 0,
                                    0, offset) + raw)
        out.write(_EOCD.pack(b'PK\x05\x06', 0, 0, len(entries), len(entries),
                             out.tell() - directory, directory, 0))


#: Seconds the loader's server may take to start (it imports torch) on top
#: of a load's own wall-clock limit.
LOADER_START_SECONDS = 30.0


def refusal_deadline(path: str) -> float:
    """The seconds within which a load of ``path`` must end, as the loader
    promises it: the wall-clock limit of a file of its size
    (:func:`mmkd.checkpoint.limits.budget`, read now, so with the limits a
    test set) plus :data:`LOADER_START_SECONDS`. A bound that holds on a
    busy machine too: the loader's CPU-time limit counts CPU seconds, and a
    CPU-bound attack may take several times as long on the wall clock."""
    from mmkd.checkpoint import limits
    return limits.budget(osp.getsize(path))['wall'] + LOADER_START_SECONDS

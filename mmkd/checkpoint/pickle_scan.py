"""Checks on a checkpoint's pickle before it is unpickled.

``torch.load(weights_only=True)`` always allows ``_codecs.encode`` (pickle
protocol 2 stores ``bytes`` as ``encode(text, 'latin1')``), with any codec.
Most codecs cost time linear in their input, but ``punycode`` (and ``idna``,
which runs punycode on each label) is quadratic: a 37 KB checkpoint kept a
loader busy for 25 s, a few hundred KB would hold it for tens of minutes.

A codec name can only reach ``encode`` as a string constant written in the
pickle (no allowed call returns a ``str``), so the scan reads the pickle's
opcodes (linear time, nothing is executed) and refuses a checkpoint that
holds the name of such a codec. The scan covers torch's zip format (the
``data.pkl`` member) and the legacy format (its leading pickles).
"""
import codecs
import io
import pickle
import pickletools
import zipfile
from typing import IO, Iterator

#: Codecs whose cost grows faster than their input.
SUPERLINEAR_CODECS = frozenset({'punycode', 'idna'})

# legacy torch files start with these pickles: magic number, protocol
# version, system info, the object; then the storage keys
_LEGACY_PICKLES = 5


def _codec_name(text: str) -> str:
    if len(text) > 40 or '.' in text:
        return ''
    try:
        return codecs.lookup(text).name
    except (LookupError, ValueError, TypeError):
        return ''


def _string_constants(stream: IO[bytes], pickles: int) -> Iterator[str]:
    for _ in range(pickles):
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                if isinstance(arg, str):
                    yield arg
        except ValueError:
            return  # not (or no more) pickle data: torch.load will say so


def check_codecs(file: IO[bytes]) -> None:
    """Refuse a checkpoint that names a codec whose cost is superlinear.

    Args:
        file (file-like): The checkpoint, opened in binary mode and seekable;
            its position is restored.

    Raises:
        pickle.UnpicklingError: The pickle holds the name of a codec in
            :data:`SUPERLINEAR_CODECS`.
    """
    start = file.tell()
    try:
        if zipfile.is_zipfile(file):
            file.seek(start)
            with zipfile.ZipFile(file) as archive:
                members = [n for n in archive.namelist()
                           if n.endswith('data.pkl')]
                streams = [(io.BytesIO(archive.read(n)), 1) for n in members]
        else:
            file.seek(start)
            streams = [(file, _LEGACY_PICKLES)]
        seen = set()
        for stream, pickles in streams:
            for text in _string_constants(stream, pickles):
                if text in seen:
                    continue
                seen.add(text)
                if _codec_name(text) in SUPERLINEAR_CODECS:
                    raise pickle.UnpicklingError(
                        f"it names the codec '{text}', whose decoding time "
                        'grows with the square of its input (a few hundred '
                        'KB hold a loader for minutes)')
    finally:
        file.seek(start)

"""A byte range of a seekable file, read in pieces: :class:`FileWindow`.

The checks before unpickling read a checkpoint's central directory, its
pickle and its legacy storage headers through windows, so that what they hold
at once is one piece (64 KiB), whatever the size of what they read.
"""
from typing import IO, Optional

from .errors import CheckpointFormatError

#: Bytes read from the file at once.
PIECE = 1 << 16


class FileWindow:
    """Reads ``[start, end)`` of ``file`` front to back, one piece at a time.

    Args:
        file (file-like): Open in binary mode and seekable. The window seeks
            it freely; the caller restores its position.
        start (int): First byte of the range (absolute file position).
        end (int): One past the last byte of the range.
        what (str): What the range is, for messages (``'member
            archive/data.pkl'``).
        piece (int): Bytes read from the file at once (at least what one
            :meth:`read` asks for).
    """

    def __init__(self, file: IO[bytes], start: int, end: int, what: str,
                 piece: int = PIECE) -> None:
        self.file = file
        self.end = end
        self.what = what
        self.piece = piece
        self.buf = b''
        self.i = 0
        self.buf_start = start  # file position of self.buf[0]

    def tell(self) -> int:
        """Returns:
            int: The file position of the next byte to be read.
        """
        return self.buf_start + self.i

    def fill(self, need: int) -> bool:
        """Make sure ``need`` unread bytes are buffered, if the range has
        them.

        Args:
            need (int): Bytes wanted (at most a piece or what was asked of
                :meth:`read`).

        Returns:
            bool: Whether they are buffered now.
        """
        have = len(self.buf) - self.i
        if have >= need:
            return True
        position = self.tell()
        wanted = min(max(need, self.piece), self.end - position)
        if wanted <= have:
            return False
        self.file.seek(position + have)
        more = self.file.read(wanted - have)
        self.buf = self.buf[self.i:] + more
        self.buf_start, self.i = position, 0
        return len(self.buf) >= need

    def read(self, n: int) -> bytes:
        """Read exactly ``n`` bytes (``n`` is small: a length prefix, a short
        string, a header).

        Args:
            n (int): Bytes to read.

        Returns:
            bytes: The next ``n`` bytes.

        Raises:
            CheckpointFormatError: The range ends first.
        """
        i = self.i
        if i + n > len(self.buf):
            if not self.fill(n):
                self.truncated(n)
            i = self.i
        self.i = i + n
        return self.buf[i:i + n]

    def byte(self) -> int:
        """Read one byte.

        Returns:
            int: Its value.

        Raises:
            CheckpointFormatError: The range has ended.
        """
        i = self.i
        if i >= len(self.buf):
            if not self.fill(1):
                self.truncated(1)
            i = self.i
        self.i = i + 1
        return self.buf[i]

    def skip(self, n: int) -> None:
        """Step over ``n`` bytes without keeping them.

        Args:
            n (int): Bytes to skip.

        Raises:
            CheckpointFormatError: The range ends first.
        """
        if n > self.end - self.tell():
            self.truncated(n)
        have = len(self.buf) - self.i
        if n <= have:
            self.i += n
        else:
            self.buf_start, self.buf, self.i = self.tell() + n, b'', 0

    def readline(self, limit: int) -> Optional[bytes]:
        """Read up to and including the next ``b'\\n'``.

        Args:
            limit (int): The longest line kept, newline included (at most
                :data:`PIECE`).

        Returns:
            bytes | None: The line without its newline, or None when it is
            longer than ``limit`` (it is skipped, never held whole).

        Raises:
            CheckpointFormatError: The range ends before a newline.
        """
        kept = True
        while True:
            self.fill(limit)
            found = self.buf.find(b'\n', self.i)
            if found >= 0:
                line = self.buf[self.i:found]
                self.i = found + 1
                return line if kept and len(line) < limit else None
            buffered = len(self.buf) - self.i
            if self.tell() + buffered >= self.end:
                self.truncated(buffered + 1)
            # ``limit`` bytes were buffered and hold no newline
            kept = False
            self.skip(buffered)

    def truncated(self, n: int) -> None:
        """Raise the error for a read past the end of the range.

        Args:
            n (int): Bytes that were wanted.

        Raises:
            CheckpointFormatError: Always.
        """
        raise CheckpointFormatError(
            f'{self.what} ends {self.end - self.tell()} bytes after offset '
            f'{self.tell()}, inside an item that needs {n}')

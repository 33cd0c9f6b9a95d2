"""Source files: parsed once at start-up, then read by byte range off the event loop.

Each file is opened once and read with ``os.pread`` (no shared file position, so concurrent
reads need no lock). A segment's ranges are first read on the loop with ``RWF_NOWAIT``, which
copies from the page cache and refuses (EAGAIN, or a short read) rather than wait for the disk:
the usual case on a warm origin, and the thread hop would cost more than the copy (~0.1-0.2 ms a
segment here). Otherwise they are read in ONE executor call: a hop per range, as aiofiles would
do, costs more than the reads of warm pages themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from origin.core.crypto.storage import StorageCipher, StorageError, StorageRecord, open_record
from origin.core.errors import MediaError
from origin.core.mp4 import drive, parse_movie
from origin.core.pipeline import Span
from origin.core.track import Movie
from origin.service.keys.protection import ProtectionKey

log = logging.getLogger("origin.storage")

# A source encrypted at rest (``origin encrypt``) has its record next to it: ``FILE.storage.json``.
RECORD_SUFFIX = ".storage.json"
_HASH_CHUNK = 1 << 20


@dataclass(slots=True)
class SourceFile:
    path: Path
    fd: int
    size: int
    mtime: float
    # A digest of what loading read (box headers and the index boxes): the same file content
    # gives the same digest on every machine, wherever it lies and whatever its mtime.
    fingerprint: str = ""
    # Storage encryption at rest: every byte read is decrypted with it (None: a clear file).
    cipher: StorageCipher | None = None

    def read(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        return data if self.cipher is None else self.cipher.apply(offset, data)

    def changed(self) -> bool:
        """True when the open file is no longer the one that was loaded (written to, truncated).

        A file deleted or renamed away is not changed: the open descriptor still reads it.
        """
        st = os.fstat(self.fd)
        return (st.st_size, st.st_mtime) != (self.size, self.mtime)


def record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def open_source(
    path: Path,
    protection: Callable[[], ProtectionKey] | None = None,
    record: str | None = None,
) -> SourceFile:
    """Open a regular file for reading; anything else (a directory, a FIFO) is an OSError.

    A file with a storage record next to it is encrypted at rest: it opens only once the whole
    file matches the record's SHA-256 and its key unwraps with ``protection``'s key (and matches
    the record's checksum); a MediaError says which check failed. ``record``: the file's record
    kept elsewhere (the catalog), used when there is none next to it.
    """
    src = _open_file(path)
    try:
        found = _record_of(path, record)
        if found is not None:
            src.cipher = _cipher_for(src, found, protection)
    except BaseException:
        os.close(src.fd)
        raise
    return src


def _record_of(path: Path, kept: str | None) -> StorageRecord | None:
    where = str(record_path(path))
    try:
        text: str | bytes = record_path(path).read_bytes()
    except FileNotFoundError:
        if kept is None:
            return None
        text, where = kept, f"{path} (its record in the catalog)"
    except OSError as e:
        raise MediaError(f"{record_path(path)}: cannot read: {e.strerror or e}") from None
    try:
        return StorageRecord.loads(text)
    except StorageError as e:
        raise MediaError(f"{where}: {e}") from None


def _cipher_for(
    src: SourceFile, record: StorageRecord, protection: Callable[[], ProtectionKey] | None
) -> StorageCipher:
    where = src.path
    if src.size != record.size:
        raise MediaError(f"{where}: modified since it was encrypted (its size differs)")
    digest = hashlib.sha256()
    for offset in range(0, src.size, _HASH_CHUNK):
        digest.update(os.pread(src.fd, _HASH_CHUNK, offset))
    if digest.hexdigest() != record.sha256:
        raise MediaError(f"{where}: modified since it was encrypted (its SHA-256 differs)")
    if protection is None:
        raise MediaError(f"{where}: encrypted at rest, and no protection key to open it")
    try:
        key = protection()
        if key.id != record.protection_key_id:
            raise StorageError("its key is wrapped for another protection certificate")
        return open_record(record, key.private)
    except StorageError as e:
        raise MediaError(f"{where}: {e}") from None


def _open_file(path: Path) -> SourceFile:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for files.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return SourceFile(path, fd, st.st_size, st.st_mtime)


def load_movie(src: SourceFile) -> Movie:
    """Parse a source file's index, reading only box headers and the moov."""

    digest = hashlib.blake2b(str(src.size).encode(), digest_size=16)

    def read(offset: int, size: int) -> bytes:
        data = src.read(offset, min(size, max(src.size - offset, 0)))
        digest.update(offset.to_bytes(8, "big"))
        digest.update(data)
        return data

    try:
        movie = drive(parse_movie(src.size), read)
    except MediaError as e:
        raise MediaError(f"{src.path}: {e}") from None
    src.fingerprint = digest.hexdigest()
    return movie


class SourceUnavailable(MediaError):
    """A loaded asset's file can no longer serve what its index says (HTTP 503).

    ``public`` is the reason for the client: it names no path, the log line has the file.
    """

    def __init__(self, detail: str, public: str) -> None:
        super().__init__(detail)
        self.public = public


_CHANGED = "a source file changed on disk since the asset was loaded (a config reload picks it up)"


def read_spans_now(files: Sequence[SourceFile], spans: Sequence[Span]) -> list[bytes | bytearray]:
    """The bytes of ``spans``, read in the calling thread (``read_spans`` runs it off the loop)."""
    out: list[bytes | bytearray] = []
    try:
        # A file written to in place would otherwise serve bytes its index does not describe.
        for i in sorted({s.file for s in spans}):
            if files[i].changed():
                raise SourceUnavailable(
                    f"{files[i].path.name}: changed on disk since it was loaded", _CHANGED
                )
        for s in spans:
            src = files[s.file]
            data: bytes | bytearray
            if src.cipher is None:
                data = os.pread(src.fd, s.size, s.offset)
                got = len(data)
            else:  # read into a buffer decrypted where it lies
                data = bytearray(s.size)
                got = os.preadv(src.fd, (data,), s.offset)
                src.cipher.apply_in_place(s.offset, data)
            if got != s.size:
                raise SourceUnavailable(
                    f"{files[s.file].path.name}: shorter than its index (changed on disk?)",
                    _CHANGED,
                )
            out.append(data)
    except OSError as e:  # a failing disk or a vanished mount: the source is unavailable
        raise SourceUnavailable(
            f"cannot read source media: {e.strerror or e}", "a source file cannot be read"
        ) from None
    return out


_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)  # Linux 4.14+


def read_resident(files: Sequence[SourceFile], spans: Sequence[Span]) -> list[bytearray] | None:
    """The bytes of ``spans`` if all of them are in the page cache now, without ever waiting for
    a disk; None when any is not (or the file is not as loaded: :func:`read_spans_now` then says
    why). Safe on the event loop."""
    if _NOWAIT is None:
        return None
    out = []
    try:
        for i in {s.file for s in spans}:
            if files[i].changed():
                return None
        for s in spans:
            buf = bytearray(s.size)
            if os.preadv(files[s.file].fd, (buf,), s.offset, _NOWAIT) != s.size:
                return None  # partly resident (or past the end): the thread reads it whole
            out.append(buf)
    except OSError:  # EAGAIN: not resident; EOPNOTSUPP: a filesystem without RWF_NOWAIT
        return None
    for s, buf in zip(spans, out, strict=True):
        cipher = files[s.file].cipher
        if cipher is not None:
            cipher.apply_in_place(s.offset, buf)
    return out


async def read_spans(
    files: Sequence[SourceFile], spans: Sequence[Span]
) -> Sequence[bytes | bytearray]:
    resident = read_resident(files, spans)
    if resident is not None:
        return resident
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, read_spans_now, files, spans)


def close_all(files: Sequence[SourceFile]) -> None:
    for f in files:
        with contextlib.suppress(OSError):
            os.close(f.fd)

"""ISO BMFF box headers (ISO/IEC 14496-12 §4.2) and big-endian readers over bytes in memory."""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterator
from typing import NamedTuple

from origin.core.errors import MediaError

HEADER_MAX = 16  # size(4) + type(4) + largesize(8); read this much to know any box's size

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U8 = struct.Struct(">B")

# The table readers rely on these widths; they hold on every platform CPython supports.
assert array("H").itemsize == 2 and array("I").itemsize == 4 and array("Q").itemsize == 8
assert array("i").itemsize == 4 and array("q").itemsize == 8


class BoxHeader(NamedTuple):
    type: str  # four-character code, latin-1 so that '©xyz' survives
    offset: int  # start of the box (header included) in the coordinates it was read in
    size: int  # whole box, header included
    header_size: int  # 8, or 16 with a largesize

    @property
    def payload(self) -> int:
        return self.offset + self.header_size

    @property
    def end(self) -> int:
        return self.offset + self.size


def plausible_type(raw: bytes) -> bool:
    """Whether four bytes look like a box type: printable ASCII (or '©', used by QuickTime)."""
    return len(raw) == 4 and all(0x20 <= b < 0x7F or b == 0xA9 for b in raw)


def read_header(data: bytes | bytearray, pos: int, end: int) -> BoxHeader:
    """Parse the box header at ``data[pos:]``; the box may extend up to ``end``.

    ``end`` may lie beyond ``len(data)`` (a top-level walk only holds the header bytes); it is
    what ``size == 0`` ("to the end of the container/file") resolves to. Whether the box really
    fits before ``end`` is left to the caller, which knows whether an overrun means truncation.
    """
    if len(data) - pos < 8:
        raise MediaError(f"truncated box header at offset {pos}")
    size = _U32.unpack_from(data, pos)[0]
    kind = data[pos + 4 : pos + 8].decode("latin-1")
    header = 8
    if size == 1:
        if len(data) - pos < 16:
            raise MediaError(f"truncated 64-bit box header of '{kind}' at offset {pos}")
        size = _U64.unpack_from(data, pos + 8)[0]
        header = 16
    elif size == 0:
        size = end - pos
    if size < header:
        raise MediaError(f"box '{kind}' at offset {pos} has invalid size {size}")
    return BoxHeader(kind, pos, size, header)


def children(data: bytes | bytearray, start: int, end: int) -> Iterator[BoxHeader]:
    """The boxes laid out in ``data[start:end]`` (a container's payload)."""
    pos = start
    # Fewer than 8 trailing bytes are tolerated: QuickTime ends some child lists with a 32-bit 0.
    while end - pos >= 8:
        box = read_header(data, pos, end)
        if box.end > end:
            raise MediaError(f"box '{box.type}' at offset {pos} overruns its parent")
        yield box
        pos = box.end


def child_map(data: bytes | bytearray, start: int, end: int) -> dict[str, BoxHeader]:
    """Children by type; the first one wins when a type repeats."""
    found: dict[str, BoxHeader] = {}
    for box in children(data, start, end):
        found.setdefault(box.type, box)
    return found


def be_array(typecode: str, data: bytes | bytearray) -> array[int]:
    """A big-endian table as a native array (one C-level copy, no per-item Python)."""
    out = array(typecode)
    out.frombytes(data)
    if sys.byteorder == "little" and out.itemsize > 1:
        out.byteswap()
    return out


def _field(fmt: struct.Struct) -> Callable[[Reader], int]:
    """A :class:`Reader` method reading one ``fmt`` field."""
    size = fmt.size
    unpack = fmt.unpack_from

    def read(self: Reader) -> int:
        return int(unpack(self.data, self.take(size))[0])

    return read


class Reader:
    """Sequential big-endian field reader over one box; overruns raise :class:`MediaError`."""

    __slots__ = ("box", "data", "end", "pos")

    def __init__(self, data: bytes, box: BoxHeader, start: int | None = None) -> None:
        self.data = data
        self.box = box.type
        self.pos = box.payload if start is None else start
        self.end = box.end

    def take(self, n: int) -> int:
        """Advance by ``n`` bytes, returning where they start."""
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise MediaError(f"'{self.box}' box is truncated")
        self.pos = pos + n
        return pos

    def skip(self, n: int) -> None:
        self.take(n)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    # One big-endian field each (the struct module does the unpacking, in C).
    u8 = _field(_U8)
    u16 = _field(_U16)
    u32 = _field(_U32)
    i32 = _field(_I32)
    u64 = _field(_U64)
    i64 = _field(_I64)

    def raw(self, n: int) -> bytes:
        pos = self.take(n)
        return bytes(self.data[pos : pos + n])

    def full(self) -> tuple[int, int]:
        """A FullBox's (version, flags)."""
        v = self.u32()
        return v >> 24, v & 0xFFFFFF

    def table(self, typecode: str, count: int, width: int) -> array[int]:
        """``count`` entries of ``width`` bytes each, as a native array of ``typecode``."""
        if count * width > self.remaining:
            raise MediaError(f"'{self.box}' box is truncated ({count} entries declared)")
        pos = self.take(count * width)
        return be_array(typecode, self.data[pos : pos + count * width])


def span(box: BoxHeader) -> tuple[int, int]:
    """(start, end) of a box's payload: the range its children are walked in."""
    return box.payload, box.end


def require(boxes: dict[str, BoxHeader], kind: str, where: str) -> BoxHeader:
    """The child box ``kind`` of a :func:`child_map`, which the format requires."""
    box = boxes.get(kind)
    if box is None:
        raise MediaError(f"{where} has no {kind}")
    return box

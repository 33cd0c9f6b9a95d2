"""An MSB-first bit reader over a short byte string, with the Exp-Golomb codes of H.264 (§9.1):
the one reader the codec-configuration parsers share (AudioSpecificConfig, SPS/PPS, slice
headers). Running past the end is a MediaError naming what was being read."""

from __future__ import annotations

from origin.core.errors import MediaError


class Bits:
    __slots__ = ("nbits", "pos", "value", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.value = int.from_bytes(data, "big")
        self.nbits = len(data) * 8
        self.pos = 0
        self.what = what  # for messages: "AudioSpecificConfig", "H.264 syntax"

    @property
    def left(self) -> int:
        return self.nbits - self.pos

    def read(self, n: int) -> int:
        if n > self.nbits - self.pos:
            raise MediaError(f"{self.what} is truncated")
        self.pos += n
        return (self.value >> (self.nbits - self.pos)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.read(1) == 1

    def ue(self) -> int:
        """An unsigned Exp-Golomb code."""
        left = self.nbits - self.pos
        rest = self.value & ((1 << left) - 1)
        if rest == 0:
            raise MediaError(f"{self.what} is truncated (Exp-Golomb code)")
        zeros = left - rest.bit_length()
        if zeros > 31:
            raise MediaError(f"{self.what} has an Exp-Golomb code longer than 32 bits")
        self.pos += zeros
        return self.read(zeros + 1) - 1

    def se(self) -> int:
        """A signed Exp-Golomb code."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

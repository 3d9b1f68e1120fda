"""The stack of a stopped thread, read in one go.

Unwinding touches a few words per frame, almost all of them just above rsp; one pread of a
window from rsp serves them. A word outside the window (a deep stack, a signal frame on an
alternate stack, a frame-pointer chain into another area) costs one more read of the
page-aligned chunk around it, kept for the rest of the walk.
"""

from __future__ import annotations

import struct
from typing import Protocol

_U64 = struct.Struct("<Q")
WINDOW = 32 * 1024
CHUNK = 4096


class Readable(Protocol):
    def read_upto(self, addr: int, n: int) -> bytes: ...


class StackMemory:
    """read_u64 over one thread's memory for the length of one unwind."""

    __slots__ = ("_mem", "_chunks", "reads")

    def __init__(self, mem: Readable, rsp: int, window: int = WINDOW) -> None:
        self._mem = mem
        self._chunks: list[tuple[int, bytes]] = []
        self.reads = 0
        # Up to the end of the page-aligned window; read_upto stops at the stack's top.
        end = (rsp + window) & ~(CHUNK - 1)
        if rsp > 0 and end > rsp:
            self._load(rsp, end - rsp)

    def _load(self, addr: int, n: int) -> bytes:
        self.reads += 1
        try:
            data = self._mem.read_upto(addr, n)
        except (OSError, ValueError, OverflowError):
            data = b""
        if data:
            self._chunks.append((addr, data))
        return data

    def read_u64(self, addr: int) -> int:
        """The word at `addr`; ValueError when it cannot be read."""
        for base, data in self._chunks:
            off = addr - base
            if 0 <= off <= len(data) - 8:
                return _U64.unpack_from(data, off)[0]
        if addr <= 0 or addr >= 1 << 47:
            raise ValueError(f"address {addr:#x} outside user space")
        base = addr & ~(CHUNK - 1)
        data = self._load(base, addr + 8 - base if addr + 8 - base > CHUNK else CHUNK)
        off = addr - base
        if len(data) < off + 8:
            raise ValueError(f"cannot read the stack at {addr:#x}")
        return int.from_bytes(data[off:off + 8], "little")

    def read(self, addr: int, n: int) -> bytes:
        """`n` bytes (n <= CHUNK) at `addr`, from the window or one more read."""
        for base, data in self._chunks:
            off = addr - base
            if 0 <= off <= len(data) - n:
                return data[off:off + n]
        data = self._load(addr, n)
        if len(data) < n:
            raise ValueError(f"cannot read {n} bytes at {addr:#x}")
        return data

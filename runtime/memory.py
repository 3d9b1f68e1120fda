"""Target memory through one open /proc/PID/mem per address space.

pread/pwrite cost one syscall per contiguous range, whatever its length, and the kernel
writes through read-only text mappings for us (FOLL_FORCE), which is how int3 bytes and XOL
slots get in without mprotect in the target.
"""

from __future__ import annotations

import os

from runtime.errors import MemoryReadError, TargetError


class ProcessMemory:
    """Reads and writes of one process's address space; `read`/`write` satisfy the
    runtime.x86.ops.Memory protocol used by emulation."""

    __slots__ = ("pid", "_fd")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TargetError(f"no process with pid {pid}") from None
        except PermissionError:
            raise TargetError(f"cannot open the memory of pid {pid}: permission denied") from None

    def read(self, addr: int, n: int) -> bytes:
        """Exactly `n` bytes at `addr`, or MemoryReadError."""
        try:
            data = os.pread(self._fd, n, addr)
        except (OSError, OverflowError, ValueError):
            data = b""
        if len(data) != n:
            raise MemoryReadError(f"cannot read {n} bytes at {addr:#x} in pid {self.pid}", addr)
        return data

    def read_upto(self, addr: int, n: int) -> bytes:
        """Up to `n` bytes at `addr`: stops short at the end of readable memory."""
        try:
            return os.pread(self._fd, n, addr)
        except (OSError, OverflowError, ValueError):
            pass
        # The range crosses into an unmapped page: read what precedes the page boundary.
        head = min(n, 0x1000 - (addr & 0xFFF))
        try:
            first = os.pread(self._fd, head, addr)
        except (OSError, OverflowError, ValueError):
            return b""
        if len(first) < head or head == n:
            return first
        return first + self.read_upto(addr + head, n - head)

    def read_str(self, addr: int, maxlen: int) -> bytes:
        """The NUL-terminated string at `addr`, at most `maxlen` bytes, without the NUL."""
        if addr == 0:
            raise MemoryReadError(f"cannot read a string at address 0 in pid {self.pid}", 0)
        data = self.read_upto(addr, maxlen)
        if not data:
            raise MemoryReadError(f"cannot read a string at {addr:#x} in pid {self.pid}", addr)
        end = data.find(b"\0")
        return data if end < 0 else data[:end]

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def write(self, addr: int, data: bytes) -> None:
        try:
            done = os.pwrite(self._fd, data, addr)
        except OSError as e:
            raise MemoryReadError(
                f"cannot write {len(data)} bytes at {addr:#x} in pid {self.pid}: {e.strerror}", addr
            ) from None
        if done != len(data):
            raise MemoryReadError(f"short write at {addr:#x} in pid {self.pid}", addr)

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little"))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

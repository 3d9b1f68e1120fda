"""USDT semaphores: the 16-bit counters a program checks before building a probe's args.

A probe with a semaphore only fires while its counter is non-zero, so the counter is
raised once per traced process while a probe that needs it is in place, in every
writable mapping of its file (libraries mapped later too), and lowered when the last
such probe goes or the tracer leaves. Like systemtap and bpftrace, the counter is
incremented and decremented, never set: whatever the program (or another tracer) put
there stays. A fork child's memory is a copy with the counter already raised, so it
inherits the parent's bookkeeping; a vfork child shares the parent's memory and so owns
none until it execs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from runtime.errors import MemoryReadError
from runtime.memory import ProcessMemory
from runtime.procmaps import Mapping, file_mappings

# (st_dev, st_ino, file offset of the counter)
SemKey = tuple[int, int, int]


def addresses(maps: list[Mapping], key: SemKey) -> list[int]:
    """Runtime addresses of the counter: one per writable mapping of its file that
    covers the offset (the data segment; a text mapping of the same page is not it)."""
    dev, ino, offset = key
    out = []
    for m in file_mappings(maps, dev, ino):
        addr = m.address_of(offset) if "w" in m.perms else None
        if addr is not None and addr + 2 <= m.end:
            out.append(addr)
    return out


def bump(mem: ProcessMemory, addr: int, delta: int) -> bool:
    """Add `delta` (+1/-1) to the counter at `addr`; a decrement stops at zero. False if
    the memory is gone."""
    try:
        value = int.from_bytes(mem.read(addr, 2), "little")
        if delta < 0 and value == 0:
            return True
        mem.write(addr, ((value + delta) & 0xFFFF).to_bytes(2, "little"))
    except MemoryReadError:
        return False
    return True


@dataclass
class SemaphoreTable:
    """Which counters the tracer raised, per process: pid -> address -> key."""

    raised: dict[int, dict[int, SemKey]] = field(default_factory=dict)
    shared: set[int] = field(default_factory=set)

    def sync(self, pid: int, mem: ProcessMemory, maps: list[Mapping],
             needed: Iterable[SemKey]) -> None:
        """Make process `pid` hold exactly one raise for each counter in `needed` that is
        mapped, given its current `maps`: raise new ones, lower unneeded ones, and forget
        those whose mapping is gone (nothing to write there)."""
        if pid in self.shared:
            return
        mine = self.raised.setdefault(pid, {})
        want = set(needed)
        for addr, key in list(mine.items()):
            if key not in want:
                bump(mem, addr, -1)
                del mine[addr]
            elif addr not in addresses(maps, key):
                del mine[addr]
        for key in want:
            for addr in addresses(maps, key):
                if addr not in mine and bump(mem, addr, +1):
                    mine[addr] = key

    def release(self, pid: int, mem: ProcessMemory) -> None:
        """Lower every counter raised in `pid` (detach, or a fork child let go)."""
        for addr in self.raised.pop(pid, {}):
            bump(mem, addr, -1)

    def fork(self, parent: int, child: int, vfork: bool) -> None:
        if vfork:
            self.shared.add(child)
        elif parent in self.raised:
            self.raised[child] = dict(self.raised[parent])

    def forget(self, pid: int) -> None:
        """The address space is gone (exit) or new (exec): nothing to lower."""
        self.raised.pop(pid, None)
        self.shared.discard(pid)

    def count(self, pid: int) -> int:
        return len(self.raised.get(pid, {}))

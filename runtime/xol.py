"""The executable out-of-line (XOL) area injected into a target.

Areas are made by running `mmap` in a stopped thread of the target: a `syscall`
instruction already present in its executable memory (the vdso has several) is borrowed,
so no other thread can run into bytes we patched. Each area lies within +-2 GiB of the code
it serves, so slots can jump back with rel32 and RIP-relative operands still reach.

Slots are handed out by a bump pointer and never freed or reused: a thread preempted inside
a slot may resume there at any later time. On detach the areas stay mapped (read+execute,
a few pages), because we cannot prove that no thread is still inside one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.errors import PlacementError
from runtime.inject import find_syscall_insn, remote_syscall
from runtime.memory import ProcessMemory
from runtime.procmaps import Mapping, read_maps

AREA_SIZE = 64 * 1024
SLOT_ALIGN = 16
PAGE = 0x1000
# Keep every byte of an area within reach of every byte of the module it serves.
REACH = (1 << 31) - AREA_SIZE - PAGE
USER_TOP = 0x7FFF_FFFF_F000
LOW_LIMIT = 0x10000

SYS_MMAP = 9
PROT_READ = 1
PROT_EXEC = 4
MAP_PRIVATE = 0x02
MAP_ANONYMOUS = 0x20
MAP_FIXED_NOREPLACE = 0x100000

INT3 = b"\xcc"


@dataclass
class XolArea:
    """One injected mapping; `next` is the first free byte."""

    start: int
    size: int
    next: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def take(self, size: int, lo: int, hi: int) -> int | None:
        """Reserve `size` bytes at an aligned address within [lo, hi], or None."""
        addr = (self.next + SLOT_ALIGN - 1) & ~(SLOT_ALIGN - 1)
        if addr < lo or addr > hi or addr + size > self.end:
            return None
        self.next = addr + size
        return addr


@dataclass
class XolSpace:
    """The XOL areas of one address space; `trampoline` is the int3 that return probes
    plant as the return address (any area will do: the stack holds a full 64-bit value)."""

    areas: list[XolArea] = field(default_factory=list)
    trampoline: int = 0
    syscall_insn: int = 0


def candidate_addresses(maps: list[Mapping], lo: int, hi: int, size: int) -> list[int]:
    """Free, page-aligned starts for `size` bytes whose whole range lies in [lo, hi),
    nearest to the middle of that window first."""
    used = sorted((m.start, m.end) for m in maps)
    gaps: list[tuple[int, int]] = []
    prev = LOW_LIMIT
    for start, end in used:
        if start > prev:
            gaps.append((prev, start))
        prev = max(prev, end)
    if prev < USER_TOP:
        gaps.append((prev, USER_TOP))
    mid = (lo + hi) // 2
    found: list[int] = []
    for g_lo, g_hi in gaps:
        # Leave a guard page on both sides so areas never touch a growing mapping.
        a_lo = max(g_lo + PAGE, lo)
        a_hi = min(g_hi - PAGE, hi) - size
        a_lo = (a_lo + PAGE - 1) & ~(PAGE - 1)
        a_hi &= ~(PAGE - 1)
        if a_lo > a_hi:
            continue
        found.append(min(max(mid & ~(PAGE - 1), a_lo), a_hi))
    return sorted(found, key=lambda a: abs(a - mid))


def syscall_insn(mem: ProcessMemory, space: XolSpace,
                 maps: list[Mapping] | None = None) -> int:
    """The `syscall` instruction this address space borrows, found once."""
    if not space.syscall_insn:
        space.syscall_insn = find_syscall_insn(mem, maps if maps is not None
                                               else read_maps(mem.pid))
    return space.syscall_insn


def map_area(
    tid: int, mem: ProcessMemory, space: XolSpace, lo: int, hi: int, size: int = AREA_SIZE
) -> tuple[XolArea, list[int]]:
    """Inject a new area of `size` bytes (a multiple of the page size) whose bytes all lie
    in [lo, hi) (a window around the code it serves); the thread `tid` must be stopped.
    Returns the area and deferred signals."""
    maps = read_maps(mem.pid)
    insn = syscall_insn(mem, space, maps)
    pending: list[int] = []
    for hint in candidate_addresses(maps, lo, hi, size)[:16]:
        flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
        result, sigs = remote_syscall(
            tid, insn, SYS_MMAP, (hint, size, PROT_READ | PROT_EXEC, flags, -1, 0),
            step=True,
        )
        pending += sigs
        if result == hint:
            area = XolArea(hint, size, hint)
            space.areas.append(area)
            if not space.trampoline:
                # The first bytes of the first area: the return-probe trampoline. Two
                # int3s: a thread left on the second by our death traps again
                # (runtime/lifeline.py).
                space.trampoline = area.take(2, hint, hint)  # type: ignore[assignment]
                mem.write(space.trampoline, INT3 * 2)
            return area, pending
    raise PlacementError(
        f"pid {mem.pid}: no free address range within 2 GiB of {lo + REACH:#x} for the XOL area"
    )

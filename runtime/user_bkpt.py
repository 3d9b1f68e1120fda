"""One breakpoint at one address of one address space: analyse, slot, insert, remove.

The instruction itself is classified once by runtime.x86.analyse into an ops object; this
module only decides where the slot goes and writes bytes. Inserting and removing are
single-byte writes, atomic with respect to instruction fetch on x86, so other threads keep
running meanwhile.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import PlacementError
from runtime.memory import ProcessMemory
from runtime.x86.analyse import analyse
from runtime.x86.ops import SiteOps
from runtime.xol import REACH, XolArea, XolSpace

INT3 = 0xCC
CODE_WINDOW = 16


@dataclass(eq=False)
class UserBkpt:
    """`orig` is the byte the int3 replaced; `slot` is 0 for emulated/skipped classes.
    `consumers` run at the hit (entry probes, internal hooks), `returns` are the return
    probes whose trampoline the hit plants. `rip_only`: a hit leaves every register but
    rip as it found it (copy-and-jump slot, no internal hook), so the engine writes rip
    alone (PTRACE_POKEUSER of `slot_word`) unless a handler changed a register. `lean`:
    besides, no consumer reads registers and no return probe needs rsp, so the engine
    need not read them either (rip from PTRACE_PEEKUSER is enough)."""

    addr: int
    orig: int
    ops: SiteOps
    slot: int
    key: tuple[int, int, int] | None
    consumers: list[Any] = field(default_factory=list)
    returns: list[Any] = field(default_factory=list)
    has_return: bool = False
    calls: list[Any] = field(default_factory=list)
    emulates: bool = field(init=False)
    rip_only: bool = field(init=False, default=False)
    lean: bool = field(init=False, default=False)
    slot_word: ctypes.c_void_p = field(init=False)
    # The instruction's other bytes: int3s too while placed (runtime/lifeline.py), so a
    # thread our death leaves inside the instruction traps instead of running its middle.
    tail: bytes = b""

    def __post_init__(self) -> None:
        # Classes that never emulate (copy + jump) skip the call on every hit.
        self.emulates = type(self.ops).emulate is not SiteOps.emulate
        # Built once: POKEUSER's data argument needs no conversion on the hit path.
        self.slot_word = ctypes.c_void_p(self.slot)

    def insert(self, mem: ProcessMemory) -> None:
        # The first byte first: from then on no thread starts the instruction, so
        # rewriting the rest cannot be seen half done.
        mem.write(self.addr, bytes((INT3,)))
        if self.tail:
            mem.write(self.addr + 1, bytes((INT3,)) * len(self.tail))

    def remove(self, mem: ProcessMemory) -> None:
        # The reverse: the rest while the first byte still traps, then the first byte.
        if self.tail:
            mem.write(self.addr + 1, self.tail)
        mem.write(self.addr, bytes((self.orig,)))

    def refresh(self) -> None:
        self.has_return = bool(self.returns)
        self.calls = [c.call for c in self.consumers]
        # Internal hooks (ld.so rendezvous, unwinder) may place probes or inject code
        # with this very thread: their hits keep the full register write-back.
        self.rip_only = bool(self.slot) and not self.emulates and all(
            c.kind != "internal" for c in self.consumers)
        self.lean = self.rip_only and not self.has_return and all(
            not getattr(c, "reads_regs", True) for c in self.consumers)


def read_site(mem: ProcessMemory, addr: int) -> bytes:
    """The bytes at `addr` for analysis (fewer at the end of a mapping)."""
    code = mem.read_upto(addr, CODE_WINDOW)
    if not code:
        raise PlacementError(f"cannot read the instruction at {addr:#x} in pid {mem.pid}")
    return code


def analyse_site(code: bytes, addr: int) -> SiteOps:
    """The ops for the site, or PlacementError with the x86 reason; a site that already
    holds an int3 is refused (another debugger, or the program's own trap)."""
    ops = analyse(code, addr)
    if ops.refused:
        reason = getattr(ops, "reason", ops.refused)
        raise PlacementError(ops.refused, reason)
    return ops


def slot_window(ops: SiteOps, addr: int) -> tuple[int, int]:
    """Inclusive range of acceptable slot addresses: the ops' own constraint if any,
    else within rel32 reach of the site (the slot jumps back to it)."""
    rng = ops.slot_range
    lo, hi = (addr - REACH, addr + REACH) if rng is None else rng
    return max(lo, addr - REACH), min(hi, addr + REACH)


def take_slot(space: XolSpace, ops: SiteOps, addr: int) -> int | None:
    """A slot from an existing area that satisfies the site's constraints, or None."""
    lo, hi = slot_window(ops, addr)
    for area in space.areas:
        got = area.take(ops.slot_size, lo, hi)
        if got is not None:
            return got
    return None


def fill_slot(mem: ProcessMemory, ops: SiteOps, slot: int) -> None:
    code = ops.build_slot(slot)
    if len(code) > ops.slot_size:
        raise PlacementError(f"slot code for {ops.address:#x} exceeds its {ops.slot_size} bytes")
    mem.write(slot, code)


def new_area_slot(area: XolArea, ops: SiteOps, addr: int) -> int:
    lo, hi = slot_window(ops, addr)
    got = area.take(ops.slot_size, lo, hi)
    if got is None:
        raise PlacementError(f"no XOL slot within reach of {addr:#x}")
    return got

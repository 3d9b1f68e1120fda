"""Jump-path sites in one process: the shared area, the program copies, the trampolines,
and the patches, with their removal.

Code lives in XOL areas (runtime/xol.py): r-x, within +-2 GiB of the text, never unmapped
(a thread may still run in a trampoline after detach, and then finds its program and its
shared area still there, so it completes correctly). Each area that serves jump sites
holds one copy of the in-target program and one return trampoline, so trampolines reach
both with rel32.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.errors import MemoryReadError, PlacementError
from runtime.jump import patch
from runtime.jump.eligible import JMP_SIZE, JumpSite
from runtime.jump.shm import SharedArea, inject
from runtime.jump.trampoline import ProgramEntries, entry_trampoline, return_trampoline
from runtime.threads import Process
from runtime.xol import AREA_SIZE, PAGE, REACH, XolArea, syscall_insn

INT3 = b"\xcc"
JUMP_AREA_SPARE = AREA_SIZE
# An entry trampoline with every option is ~400 bytes; reserve generously, then trim.
TRAMPOLINE_MAX = 1024
# The most bytes one patch replaces: the jmp's 5 reach into at most one more instruction
# (15 bytes at most) after the first ones; a larger patch is refused.
MAX_PATCH = 20


class Program(Protocol):
    """What the sites need of a compiled in-target program (runtime/jump's JumpProgram)."""

    @property
    def code(self) -> bytes: ...

    @property
    def entries(self) -> Mapping[str, int]: ...

    @property
    def shm_size(self) -> int: ...


@dataclass(frozen=True)
class AreaCode:
    """Where one area holds the program copy's entry points and the return trampoline."""

    entries: ProgramEntries
    ret_tramp: int


class SiteConflict(PlacementError):
    """Another probe site lies inside the bytes the jmp would replace (or this site inside
    another jump site's): the site keeps the trap path."""


@dataclass(eq=False)
class PatchedSite:
    """A site whose first bytes are our jmp: `orig` what they were."""

    addr: int
    orig: bytes
    trampoline: int
    site_id: int
    entry: bool = True
    returns: bool = False
    patch: bytes = b""  # what we wrote: a site whose bytes differ is no longer ours
    # The session probes this patch serves (handed to the trap path on eviction).
    probes: list[Any] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.addr + len(self.orig)


@dataclass(eq=False)
class JumpState:
    """One program's state in one process, kept as a process extension (the engine tells
    it of forks and of the clean-up at detach). A fork child shares `shm` and starts with
    copies of the parent's dicts: its text is a copy with the same patches. `on_clean`:
    the program's own part of a clean-up (pending return addresses, the tracer-gone flag),
    called before the text is restored."""

    shm: SharedArea
    code: dict[int, AreaCode] = field(default_factory=dict)
    sites: dict[int, PatchedSite] = field(default_factory=dict)
    on_clean: Callable[[Process, JumpState], None] | None = None
    # Told of a followed fork child's first stop: (engine, child, its thread, its state).
    on_start: Callable[[Any, Process, Any, JumpState], None] | None = None
    # The fork child's copy: the parent's state and the thread that forked.
    parent: JumpState | None = None
    forking_tid: int = 0
    # The parent's area as it was at the fork (the parent runs on before the child's
    # first stop): the forking thread's pending returns and self-> values come from it.
    fork_image: bytearray | None = None
    # Told of a vfork (tid, child pid) and of its end (tid, 0): the child borrows the
    # forking thread's memory, thread pointer included, until it execs or exits.
    on_vfork: Callable[[JumpState, int, int], None] | None = None
    vforks: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    # Told of each new thread at its first stop (its thread pointer may be a dead one's).
    on_thread: Callable[[Process, Any, JumpState], None] | None = None

    def forked(self, child: Process, forking_tid: int) -> JumpState | None:
        if child.vfork:
            # The very same memory: the parent's state covers it.
            if self.on_vfork is not None:
                self.on_vfork(self, forking_tid, child.pid)
            return None
        image = bytearray(self.shm.view) if self.on_start is not None else None
        return JumpState(self.shm, dict(self.code), dict(self.sites), self.on_clean,
                         self.on_start, self, forking_tid, image, self.on_vfork,
                         on_thread=self.on_thread)

    def thread_started(self, proc: Process, th: Any) -> None:
        if self.on_thread is not None:
            self.on_thread(proc, th, self)

    def vfork_done(self, proc: Process, tid: int) -> None:
        if self.on_vfork is not None:
            self.on_vfork(self, tid, 0)

    def started(self, engine: Any, proc: Process, th: Any) -> None:
        if self.on_start is not None:
            self.on_start(engine, proc, th, self)

    def covering(self, addr: int) -> PatchedSite | None:
        """The jump site whose replaced bytes include `addr` past their first byte."""
        for site in self.sites.values():
            if site.addr < addr < site.end:
                return site
        return None

    def evict(self, engine: Any, proc: Process, addr: int) -> list[Any]:
        """An int3 must go at `addr`: the jump site whose bytes hold it goes back to the
        original bytes; its probes are returned for the trap path."""
        out: list[Any] = []
        for site in list(self.sites.values()):
            if site.addr <= addr < site.end:
                unpatch(engine, proc, self, site.addr)
                out += site.probes
        return out

    def clean(self, proc: Process) -> None:
        if self.on_clean is not None:
            self.on_clean(proc, self)
        restore_all(proc, self)


def _near(area: XolArea, addr: int) -> bool:
    return addr - REACH <= area.start and area.end <= addr + REACH


def _program_area(engine: Any, proc: Process, state: JumpState, program: Program,
                  addr: int) -> tuple[XolArea, AreaCode]:
    """An area within reach of `addr` that holds the program, made if need be."""
    for area in proc.xol.areas:
        code = state.code.get(area.start)
        if code is not None and _near(area, addr):
            return area, code
    need = len(program.code) + PAGE + JUMP_AREA_SPARE
    size = (need + PAGE - 1) & ~(PAGE - 1)
    area = engine.installer.new_area(proc, addr - REACH, addr + REACH, size)
    prog_at = area.take(len(program.code), area.start, area.end)
    if prog_at is None:
        raise PlacementError(f"no room for the in-target program near {addr:#x}")
    proc.mem.write(prog_at, program.code)
    off = program.entries
    entries = ProgramEntries(prog_at + off["jp_hit"], prog_at + off["jp_ret_enter"],
                             prog_at + off["jp_ret_exit"], state.shm.address)
    ret_at = area.take(TRAMPOLINE_MAX, area.start, area.end)
    if ret_at is None:
        raise PlacementError(f"no room for the return trampoline near {addr:#x}")
    ret_code = return_trampoline(ret_at, entries)
    area.next = ret_at + len(ret_code)
    proc.mem.write(ret_at, ret_code)
    code = AreaCode(entries, ret_at)
    state.code[area.start] = code
    return area, code


def _trampoline_room(engine: Any, proc: Process, state: JumpState, code: AreaCode,
                     addr: int) -> tuple[XolArea, int]:
    """Room for one more trampoline once the program's own area is full: an area already
    serving the same program copy near `addr`, else a new one within rel32 reach of both
    the site and the program (its trampolines call the program), registered under the same
    copy so later sites use it too. Without this every site after the first few hundred
    mapped an area of its own (`uprobe:libc:*`: thousands of mappings, minutes)."""
    for area in proc.xol.areas:
        if state.code.get(area.start) is code and _near(area, addr):
            at = area.take(TRAMPOLINE_MAX, addr - REACH, addr + REACH)
            if at is not None:
                return area, at
    targets = (code.entries.hit, code.entries.ret_enter, code.entries.ret_exit, code.ret_tramp)
    lo, hi = max(addr, *targets) - REACH, min(addr, *targets) + REACH
    if lo < hi:
        area = engine.installer.new_area(proc, lo, hi)
        state.code[area.start] = code
        at = area.take(TRAMPOLINE_MAX, addr - REACH, addr + REACH)
        if at is not None:
            return area, at
    raise PlacementError(f"no room for a trampoline near {addr:#x}")


def open_state(engine: Any, proc: Process, program: Program, addr: int,
               key: str = "jump") -> JumpState:
    """Inject the shared area (through a stopped thread) and register the state as the
    process extension `key`; `addr` is a site that the scratch area used for the memfd's
    name will serve later."""
    scratch_area = next((a for a in proc.xol.areas if _near(a, addr)), None)
    if scratch_area is None:
        scratch_area = engine.installer.new_area(proc, addr - REACH, addr + REACH)
    scratch = scratch_area.take(16, scratch_area.start, scratch_area.end)
    if scratch is None:
        scratch_area = engine.installer.new_area(proc, addr - REACH, addr + REACH)
        scratch = scratch_area.take(16, scratch_area.start, scratch_area.end)
    assert scratch is not None

    def make(th: Any) -> tuple[SharedArea, list[int]]:
        insn = syscall_insn(proc.mem, proc.xol)
        return inject(th.tid, proc.mem, insn, scratch, program.shm_size)

    shm = engine.with_stopped_thread(proc, make)
    state = JumpState(shm)
    proc.extensions[key] = state
    return state


def own_area(proc: Process, th: Any, state: JumpState) -> JumpState:
    """A followed fork child's own shared area, mapped over the one it shares with its
    parent at the same address (stopped thread `th`, before the child ran anything): its
    threads have the same thread pointers as the parent's, and the program finds threads
    by thread pointer. Registered as the child's extension in place of `state`."""
    area = next((a for a in proc.xol.areas if a.start in state.code), None)
    scratch = area.take(16, area.start, area.end) if area is not None else None
    if scratch is None:
        raise PlacementError(f"pid {proc.pid}: no room to name the fork child's area")
    insn = syscall_insn(proc.mem, proc.xol)
    shm, pending = inject(th.tid, proc.mem, insn, scratch, state.shm.size, state.shm.address)
    th.pending += pending
    own = JumpState(shm, state.code, state.sites, state.on_clean, state.on_start,
                    on_vfork=state.on_vfork, on_thread=state.on_thread)
    for key, ext in list(proc.extensions.items()):
        if ext is state:
            proc.extensions[key] = own
    return own


def place(engine: Any, proc: Process, state: JumpState, program: Program, site: JumpSite,
          site_id: int, entry: bool, returns: bool) -> PatchedSite:
    """Write the site's trampoline, then patch the site live (every thread stopped)."""
    addr = site.address
    old = state.sites.get(addr)
    if old is not None:
        if _still_ours(proc, old):
            return old
        # The mapping was replaced (dlclose, dlopen again at the same place): a new site.
        del state.sites[addr]
    _check_conflicts(proc, state, site)
    area, code = _program_area(engine, proc, state, program, addr)
    at = area.take(TRAMPOLINE_MAX, addr - REACH, addr + REACH)
    if at is None:
        area, at = _trampoline_room(engine, proc, state, code, addr)
    tramp = entry_trampoline(at, site, site_id, code.entries, entry, returns, code.ret_tramp)
    if len(tramp) > TRAMPOLINE_MAX:
        raise PlacementError(f"the trampoline for {addr:#x} exceeds {TRAMPOLINE_MAX} bytes")
    # Give back what the trampoline did not use (the area's bump pointer moves back).
    if area.next == at + TRAMPOLINE_MAX:
        area.next = at + len(tramp)
    proc.mem.write(at, tramp)
    orig = proc.mem.read(addr, site.covered)
    rel = at - (addr + JMP_SIZE)
    jmp = b"\xe9" + rel.to_bytes(4, "little", signed=True)
    data = jmp + INT3 * (site.covered - JMP_SIZE)
    with patch.all_stopped(engine, proc) as threads:
        patch.write_patch(proc, threads, addr, data)
    done = PatchedSite(addr, orig, at, site_id, entry, returns, data)
    state.sites[addr] = done
    return done


def _check_conflicts(proc: Process, state: JumpState, site: JumpSite) -> None:
    addr, end = site.address, site.resume
    if end - addr > MAX_PATCH:
        raise PlacementError(f"the jump at {addr:#x} would replace {end - addr} bytes")
    # Only a site starting less than a patch's length before `end` can overlap: look
    # those addresses up instead of scanning every site (thousands with `uprobe:libc:*`).
    for start in range(addr - MAX_PATCH + 1, end):
        other = state.sites.get(start)
        if other is not None and other.addr < end and addr < other.end:
            raise SiteConflict(
                f"the jump at {other.addr:#x} and the one at {addr:#x} would overlap",
                f"another jump-path site at {other.addr:#x} overlaps the patched bytes")
    for at in range(addr, end):
        if at in proc.sites:
            raise SiteConflict(
                f"a breakpoint at {at:#x} lies inside the bytes a jump at {addr:#x} replaces",
                f"another probe at +{at - addr} lies inside the patched bytes")


def unpatch(engine: Any, proc: Process, state: JumpState, addr: int) -> None:
    """Put a site's bytes back (every thread stopped: the write is not atomic). Its
    trampoline stays: a thread may be inside it, and it ends by jumping back."""
    site = state.sites.pop(addr, None)
    if site is None or not _still_ours(proc, site):
        return
    with patch.all_stopped(engine, proc):
        proc.mem.write(addr, site.orig)


def _still_ours(proc: Process, site: PatchedSite) -> bool:
    """Whether the site's bytes are still the patch we wrote (a dlclose takes them away,
    and another mapping may hold something else there since)."""
    try:
        return proc.mem.read(site.addr, len(site.patch)) == site.patch
    except MemoryReadError:
        return False


def restore_all(proc: Process, state: JumpState) -> None:
    """Every site's bytes back, for detach (the caller has every thread stopped). A thread
    stopped at a site's first byte now runs the original instruction; no thread can be
    strictly inside the jmp, and int3 pads are never reached."""
    for addr, site in list(state.sites.items()):
        if not _still_ours(proc, site):
            continue  # the mapping is gone (dlclose): nothing of ours to take back
        try:
            proc.mem.write(addr, site.orig)
        except MemoryReadError:
            pass
    state.sites.clear()

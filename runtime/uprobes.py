"""Probes keyed by file identity and file offset, installed into address spaces.

A probe names (st_dev, st_ino, file offset), never a process: every executable mapping of
that file in every traced process gets its own breakpoint, so new mappings (exec, dlopen,
fork children) are handled by installing the same registry again. Nothing here looks at
instruction bytes; user_bkpt and runtime.x86 do.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime import lifeline
from runtime.errors import UprobeError
from runtime.procmaps import Mapping, executable_mappings
from runtime.threads import Process
from runtime.user_bkpt import (
    CODE_WINDOW,
    INT3,
    UserBkpt,
    analyse_site,
    fill_slot,
    new_area_slot,
    read_site,
    slot_window,
    take_slot,
)
from runtime.x86.ops import SiteOps
from runtime.xol import XolArea

# Inject a new XOL area whose bytes all lie in [lo, hi); the engine stops a thread for it.
AreaMaker = Callable[[Process, int, int], XolArea]
# Called at a hit with the stopped thread and the registers (set by the session/engine).
HitCall = Callable[[Any, Any], None]
# Replaces a site's ops by another way of leaving it (an internal hook emulating its `ret`).
OpsWrap = Callable[[SiteOps], SiteOps]

_ids = itertools.count(1)


@dataclass(eq=False)
class Probe:
    """A probe handle: `kind` is "entry", "return" or "internal" (the runtime's own hooks,
    e.g. on the C++ unwinder). `call(thread, regs)` is what the engine runs at a hit.
    `semaphore` is the file offset of a USDT semaphore in the placement's file, raised
    in every process while the probe is in place (runtime/semaphores.py). `reads_regs`
    False promises the handler never looks at registers (ctx.regs, arg, retval, ustack,
    set_reg): the engine may then read rip alone at its hits."""

    placement: Any
    handler: Callable[..., Any] | None
    kind: str = "entry"
    sync: bool = False
    label: str = ""
    call: HitCall | None = field(default=None, repr=False)
    semaphore: int | None = None
    reads_regs: bool = True
    # Another way to place the probe (the jump path): install(engine, proc, probe, maps)
    # -> sites, uninstall(engine, proc, probe); None: int3s (the engine's own).
    installer: Any = None
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def symbol(self) -> str:
        return getattr(self.placement, "symbol", "")

    @property
    def key(self) -> tuple[int, int, int]:
        p = self.placement
        return (p.dev, p.ino, p.file_offset)


@dataclass
class ProbeRegistry:
    """Every active probe, by file identity; the source of truth for (re)installation.
    `lean`: every probe is an entry probe that reads no registers, so a hit can start by
    reading rip alone (PEEKUSER) and skip GETREGS at the sites that allow it."""

    probes: dict[int, Probe] = field(default_factory=dict)
    lean: bool = False
    # How many registered probes are not lean: kept as a count so that adding the n-th
    # probe costs O(1), not a scan of the n-1 before it (thousands for `uprobe:libc:*`).
    not_lean: int = 0

    def add(self, probe: Probe) -> None:
        if probe.id in self.probes:
            return
        self.probes[probe.id] = probe
        self.not_lean += not _is_lean(probe)
        self.lean = self.not_lean == 0

    def remove(self, probe: Probe) -> None:
        if self.probes.pop(probe.id, None) is None:
            return
        self.not_lean -= not _is_lean(probe)
        self.lean = bool(self.probes) and self.not_lean == 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self.probes.values()))


def _is_lean(probe: Probe) -> bool:
    return probe.kind == "entry" and not probe.reads_regs


def site_addresses(maps: list[Mapping], probe: Probe) -> list[int]:
    """Runtime addresses of the probe's site in one process (one per mapping of the file)."""
    dev, ino, off = probe.key
    found = []
    for m in executable_mappings(maps, dev, ino):
        addr = m.address_of(off)
        if addr is not None:
            found.append(addr)
    return found


def _site_code(proc: Process, addr: int) -> bytes:
    """The site's bytes as the program has them: our own int3s in the window are replaced
    by the bytes they hide (two probes on neighbouring instructions)."""
    code = bytearray(read_site(proc.mem, addr))
    for i in range(1, min(len(code), CODE_WINDOW)):
        other = proc.sites.get(addr + i)
        if other is not None and code[i] == INT3:
            code[i] = other.orig
    return bytes(code)


def make_bkpt(proc: Process, addr: int, key: tuple[int, int, int], new_area: AreaMaker,
              wrap: OpsWrap | None = None) -> UserBkpt:
    """Analyse the site, fill its slot, then insert the int3 (the slot must be complete
    before any thread can trap there)."""
    code = _site_code(proc, addr)
    ops = analyse_site(code, addr)
    if wrap is not None:
        ops = wrap(ops)
    line = lifeline.of(proc)
    if line is not None:
        ops = lifeline.widen(ops, code)
    slot = 0
    if ops.slot_size:
        slot = take_slot(proc.xol, ops, addr) or 0
        if not slot:
            lo, hi = slot_window(ops, addr)
            area = new_area(proc, lo, hi + ops.slot_size)
            slot = new_area_slot(area, ops, addr)
        fill_slot(proc.mem, ops, slot)
    tail = code[1:ops.length] if line is not None else b""
    bp = UserBkpt(addr=addr, orig=code[0], ops=ops, slot=slot, key=key, tail=tail)
    if line is not None:
        line.add_site(proc.mem, addr, ops.length, lifeline.resume_address(line, proc.mem, ops, slot))
    proc.sites[addr] = bp
    proc.ever_sites[addr] = code[0]
    if tail:
        proc.tails[addr] = tail
    bp.insert(proc.mem)
    return bp


def install(proc: Process, probe: Probe, maps: list[Mapping], new_area: AreaMaker,
            wrap: OpsWrap | None = None) -> int:
    """Put `probe` on every mapping of its file in `proc`; returns how many sites. `wrap`
    applies to sites made here, not to one already there."""
    n = 0
    for addr in site_addresses(maps, probe):
        bp = proc.sites.get(addr)
        if bp is None:
            bp = make_bkpt(proc, addr, probe.key, new_area, wrap)
        target = bp.returns if probe.kind == "return" else bp.consumers
        if probe not in target:
            target.append(probe)
            bp.refresh()
        n += 1
    return n


def uninstall(proc: Process, probe: Probe) -> None:
    """Take `probe` off every site in `proc`; a site left without consumers loses its int3
    (its slot stays: a thread may still be running in it). Fork children share the site
    objects with their parent, so an emptied site is cleaned wherever it is found."""
    for addr, bp in list(proc.sites.items()):
        if probe in bp.consumers:
            bp.consumers.remove(probe)
            bp.refresh()
        elif probe in bp.returns:
            bp.returns.remove(probe)
            bp.refresh()
        if not bp.consumers and not bp.returns:
            del proc.sites[addr]
            proc.tails.pop(addr, None)
            try:
                bp.remove(proc.mem)
            except UprobeError:
                pass  # the process is gone

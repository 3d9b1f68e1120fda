"""The jump path as a placement strategy (runtime/placement.py), and its run-time side.

`JumpStrategy.place` takes a site when its clause runs in the target (the program's split
says so) and its instructions allow a jmp (eligibility, decided from the file's bytes);
otherwise it raises NotEligible with the reason and the site keeps its int3. A taken site
becomes a session probe with an installer (`JumpInstaller`): the engine calls it wherever
the probe's file is mapped (start, exec, dlopen), so the jump path follows mappings exactly
like the trap path. Where a process allows no jump after all (a C++ return probe, another
probe inside the patched bytes, no code area in reach), that process gets the int3.

Per process the installer injects one shared area and keeps one reader of it. A thread
(`Drainer`) drains every reader's event ring in order and runs the user side of the events;
the maps are merged into the run's MapStore before any printout and at the end.
"""

from __future__ import annotations

import bisect
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime import ptrace_ops as pt
from runtime import retprobes
from runtime.elfsyms import ElfFile
from runtime.errors import PlacementError, UprobeError
from runtime.jump import layout as L
from runtime.jump import sites as jsites
from runtime.jump.eligible import FunctionCode, Verdict, check_site
from runtime.jump.program import JumpProgram
from runtime.jump.reader import JumpReader
from runtime.placement import NotEligible, Placed, ProbeHost, Site
from runtime.procmaps import Mapping
from runtime.threads import Process
from runtime.uprobes import Probe, site_addresses

DRAIN_IDLE_S = 0.001
# How long the end waits for hits that were in flight at detach to commit their records.
IN_FLIGHT_WAIT_S = 2.0
SITE_CODE = 64
PADDING_MAX = 64


def function_of(elf: ElfFile, vaddr: int, bias: int) -> FunctionCode | None:
    """The function holding link-time `vaddr`, at runtime addresses (`bias` added), with
    gcc's split-off `.cold` part whose branches come back into it."""
    hit = elf.symbolize(vaddr)
    if hit is None:
        return None
    name, off = hit
    sym = next((s for s in elf.functions_named(name) if s.vaddr == vaddr - off), None)
    if sym is None or sym.offset is None or sym.size <= 0:
        return None
    parts = tuple((c.vaddr + bias, elf.read_function_bytes(c))
                  for c in elf.functions_named(f"{name}.cold") if c.offset is not None)
    end = sym.vaddr + sym.size
    # The next function (or section end): the bytes up to it are alignment padding.
    i = bisect.bisect_right(elf.functions, end - 1, key=lambda f: f.vaddr)
    limit = elf.functions[i].vaddr if i < len(elf.functions) else 0
    limit = min(limit, end + PADDING_MAX) if limit else 0
    padding = elf.read(sym.offset + sym.size, limit - end) if limit > end else b""
    return FunctionCode(name, sym.vaddr + bias, elf.read_function_bytes(sym), parts,
                        limit + bias if limit else 0, padding)


def verdict_for(path: str, vaddr: int, bias: int = 0) -> Verdict:
    """The jump-path verdict for the site at link-time `vaddr` of `path`, decided on the
    file's own bytes (never on memory that may hold our patches), at runtime addresses."""
    try:
        elf = ElfFile.open(path)
    except UprobeError as e:
        return Verdict(None, e.message)
    func = function_of(elf, vaddr, bias)
    offset = elf.vaddr_to_offset(vaddr)
    if offset is None:
        return Verdict(None, "the site has no bytes in the file")
    return check_site(elf.read(offset, SITE_CODE), vaddr + bias, func)


@dataclass(eq=False)
class ProcessJump:
    """One process's side: its shared area's state and its reader."""

    state: jsites.JumpState
    reader: JumpReader


@dataclass(eq=False)
class JumpRun:
    """The jump path of one run: the program, the site ids, every process's area and
    reader, and the drain thread. `lock` orders every reader call (drain, merge)."""

    prog: JumpProgram
    store: Any
    user: Any = None
    # The run's start (HandlerSupport.start_ns): `elapsed` in the target counts from it.
    start_ns: int | None = None
    readers: list[JumpReader] = field(default_factory=list)
    procs: dict[int, ProcessJump] = field(default_factory=dict)
    site_ids: dict[tuple[int, int, int], int] = field(default_factory=dict)
    clauses: dict[int, dict[int, str]] = field(default_factory=dict)  # site -> clause -> kind
    lock: threading.RLock = field(default_factory=threading.RLock)
    drainer: Drainer | None = None

    def site_id(self, key: tuple[int, int, int]) -> int:
        got = self.site_ids.get(key)
        if got is None:
            got = len(self.site_ids)
            if got >= L.MAX_SITES:
                raise PlacementError(f"more than {L.MAX_SITES} jump-path sites")
            self.site_ids[key] = got
        return got

    def write_site(self, site_id: int) -> None:
        """The site's clause set into every process's area."""
        clauses = tuple(self.clauses.get(site_id, {}))
        for pj in self.procs.values():
            if clauses:
                self.prog.add_site(memoryview(pj.state.shm.view), site_id, clauses)
            else:
                self.prog.remove_site(memoryview(pj.state.shm.view), site_id)

    def open_process(self, engine: Any, proc: Process, addr: int) -> ProcessJump:
        pj = self.procs.get(proc.pid)
        if pj is not None and proc.extensions.get("jump") is pj.state:
            return pj
        state = jsites.open_state(engine, proc, self.prog, addr)
        pj = self._adopt(proc, state)
        return pj

    def _adopt(self, proc: Process, state: jsites.JumpState) -> ProcessJump:
        view = memoryview(state.shm.view)
        self.prog.init_shm(view, start_ns=self.start_ns)
        reader = JumpReader(self.prog, state.shm.view, self.store, self.user)
        state.on_clean = self._on_clean
        state.on_start = self._on_start
        state.on_vfork = self._on_vfork
        state.on_thread = self._on_thread
        pj = ProcessJump(state, reader)
        with self.lock:
            self.procs[proc.pid] = pj
            self.readers.append(reader)
        for site_id, clauses in self.clauses.items():
            if clauses:
                self.prog.add_site(view, site_id, tuple(clauses))
        return pj

    def _on_start(self, engine: Any, child: Process, th: Any,
                  state: jsites.JumpState) -> None:
        """A followed fork child, before its first instruction: its own area, with the
        forking thread's state (self-> values, pending returns) carried over."""
        own = jsites.own_area(child, th, state)
        self._adopt(child, own)
        if state.fork_image is not None:
            self.prog.copy_thread_state(memoryview(state.fork_image),
                                        memoryview(own.shm.view), state.forking_tid,
                                        child.pid, child.pid)
            state.fork_image = None

    def _on_vfork(self, state: jsites.JumpState, tid: int, child: int) -> None:
        """A vfork child runs on its parent thread's memory and thread pointer, so its
        hits find that thread's entry: it carries the child's tid and pid until the
        parent thread runs again (child == 0), then gets its own back. An entry the child
        claimed itself (the thread had none) is dropped then."""
        lay = self.prog.layout
        view = memoryview(state.shm.view)
        with self.lock:
            if child:
                for i in range(L.MAX_THREADS):
                    off = lay.threads_off + i * lay.thread_size
                    key, t, p = struct.unpack_from("<QQQ", view, off)
                    if key > 1 and t == tid:
                        state.vforks[tid] = (child, off, t, p)
                        struct.pack_into("<QQ", view, off + L.T_TID, child, child)
                        return
                state.vforks[tid] = (child, -1, 0, 0)
                return
            child, off, t, p = state.vforks.pop(tid, (0, -1, 0, 0))
            if off >= 0:
                struct.pack_into("<QQ", view, off + L.T_TID, t, p)
            elif child:
                self.prog.forget_thread(view, child)

    def _on_thread(self, proc: Process, th: Any, state: jsites.JumpState) -> None:
        """A new thread: its entry is made fresh now, keyed by its thread pointer, since
        glibc gives a new thread the stack and TCB of a dead one (a stale entry would
        carry the dead thread's tid, self-> values and pending returns)."""
        regs = pt.new_regs()
        try:
            pt.getregs(th.tid, pt.regs_address(regs))
        except pt.PtraceFailed:
            return
        with self.lock:
            self.prog.bind_thread(memoryview(state.shm.view), regs.fs_base, th.tid, proc.pid)

    def thread_exited(self, pid: int, tid: int) -> None:
        """A thread is gone: its entry in its process's area is free for a new thread
        (thread pointers are reused)."""
        pj = self.procs.get(pid)
        if pj is not None:
            with self.lock:
                self.prog.forget_thread(memoryview(pj.state.shm.view), tid)

    def _on_clean(self, proc: Process, state: jsites.JumpState) -> None:
        """Detach, or a fork child we do not follow (every thread stopped): pending
        returns back into their stack slots; for a process's own area, the ring drained
        and closed (nobody waits for it any more)."""
        tramps = {c.ret_tramp for c in state.code.values()}
        view = memoryview(state.shm.view)
        child_copy = state.parent is not None and state.shm is state.parent.shm
        if child_copy and state.fork_image is not None:
            view = memoryview(state.fork_image)  # the parent ran on since the fork
        for tid, slot, orig in self.prog.pending_returns(view):
            if child_copy and tid != state.forking_tid:
                continue
            try:
                if proc.mem.read_u64(slot) in tramps:
                    proc.mem.write_u64(slot, orig)
            except UprobeError:
                continue
        pj = self.procs.get(proc.pid)
        if pj is None or pj.state is not state:
            return
        self.flush()
        pj.reader.close()

    def flush(self) -> None:
        """Drain every ring and merge every shared map into the store."""
        with self.lock:
            for reader in self.readers:
                while reader.drain():
                    pass
                reader.merge_maps()

    def stop_hits(self) -> None:
        """exit() ran on the user side: no clause runs in any target from now on."""
        with self.lock:
            for reader in self.readers:
                reader.stop_hits()

    def lost(self) -> int:
        return sum(r.lost for r in self.readers)

    def counters(self) -> dict[str, int]:
        """The in-target program's own counters (misses, faults), summed over areas."""
        total: dict[str, int] = {}
        for r in self.readers:
            for name, value in r.counters.items():
                if name != "lost":
                    total[name] = total.get(name, 0) + value
        return total

    def start(self) -> None:
        if self.drainer is None:
            self.drainer = Drainer(self)
            self.drainer.start()

    def stop(self) -> None:
        """The end: the drain thread stops, then every record is run. A thread let go by
        detach in the middle of a hit commits its record a moment later, and a record not
        yet committed holds back the ones after it: wait for those (bounded)."""
        if self.drainer is not None:
            self.drainer.stop()
            self.drainer = None
        self.flush()
        deadline = time.monotonic() + IN_FLIGHT_WAIT_S
        while any(r.pending() for r in self.readers) and time.monotonic() < deadline:
            time.sleep(DRAIN_IDLE_S)
            self.flush()


class Drainer:
    """The tracer-side thread that empties the event rings while the target runs (writers
    of a full ring wait for it, woken by the reader after each drain)."""

    def __init__(self, run: JumpRun) -> None:
        self.run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="uprobe-jump-drain",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        run = self.run
        while not self._stop.is_set():
            done = 0
            with run.lock:
                for reader in list(run.readers):
                    done += reader.drain()
            if not done:
                self._stop.wait(DRAIN_IDLE_S)


@dataclass(eq=False)
class JumpInstaller:
    """What the engine calls to put one jump-path probe into one process (and out)."""

    run: JumpRun
    clause: int
    kind: str  # "entry" or "return"
    # Processes where this probe went on the trap path instead (with the reason).
    trapped: dict[int, str] = field(default_factory=dict)

    def install(self, engine: Any, proc: Process, probe: Probe, maps: list[Mapping]) -> int:
        addrs = site_addresses(maps, probe)
        if not addrs:
            return 0
        why = self._process_reason(proc, maps)
        n = 0
        for addr in addrs:
            try:
                if why:
                    raise PlacementError(why)
                n += self._install_at(engine, proc, probe, addr)
            except PlacementError as e:
                self.trapped[proc.pid] = e.reason
                return engine.installer.install_trap(proc, probe, maps)
        return n

    def _process_reason(self, proc: Process, maps: list[Mapping]) -> str:
        if self.kind == "return":
            exe = os.path.realpath(f"/proc/{proc.pid}/exe")
            if retprobes.unwinder_sites(maps, exe):
                return ("a return probe in a process that can throw C++ exceptions: the "
                        "unwinder must not meet a trampoline")
        return ""

    def _install_at(self, engine: Any, proc: Process, probe: Probe, addr: int) -> int:
        pl = probe.placement
        verdict = verdict_for(pl.path, pl.vaddr, addr - pl.vaddr)
        if verdict.site is None:
            raise PlacementError(verdict.reason)
        run = self.run
        pj = run.open_process(engine, proc, addr)
        site_id = run.site_id(probe.key)
        clauses = run.clauses.setdefault(site_id, {})
        clauses[self.clause] = self.kind
        kinds = set(clauses.values())
        state = pj.state
        old = state.sites.get(addr)
        if old is not None and (old.entry, old.returns) != ("entry" in kinds,
                                                            "return" in kinds):
            # A trampoline calling what the site now needs replaces the old one.
            jsites.unpatch(engine, proc, state, addr)
            keep = old.probes
        else:
            keep = []
        run.write_site(site_id)
        try:
            patched = jsites.place(engine, proc, state, run.prog, verdict.site, site_id,
                                   "entry" in kinds, "return" in kinds)
        except PlacementError:
            del clauses[self.clause]
            run.write_site(site_id)
            raise
        for p in (*keep, probe):
            if p not in patched.probes:
                patched.probes.append(p)
        return 1

    def uninstall(self, engine: Any, proc: Process, probe: Probe) -> None:
        run = self.run
        site_id = run.site_ids.get(probe.key)
        if site_id is None:
            return
        clauses = run.clauses.get(site_id, {})
        clauses.pop(self.clause, None)
        run.write_site(site_id)
        pj = run.procs.get(proc.pid)
        if pj is None or clauses:
            return
        for addr, site in list(pj.state.sites.items()):
            if site.site_id == site_id:
                try:
                    jsites.unpatch(engine, proc, pj.state, addr)
                except UprobeError:
                    pass  # the process is gone


class JumpStrategy:
    """The placement strategy in front of the trap: takes what the jump path can run.
    `run` is None when no clause of the plan runs in the target: then every site is
    declined, with its clause's reason (`reasons`, from the split)."""

    name = "jump"

    def __init__(self, run: JumpRun | None, reasons: dict[int, str] | None = None) -> None:
        # Per clause: why it keeps the trap path although the program could run it.
        self.run = run
        self.reasons = reasons or {}

    def place(self, host: ProbeHost, site: Site) -> Placed:
        reason = self.reason(site)
        if reason:
            raise NotEligible(reason)
        assert self.run is not None
        inst = JumpInstaller(self.run, site.clause, site.kind)
        probe = host.add_probe(site.placement, site.handler, kind=site.kind, sync=site.sync,
                               label=site.label, semaphore=site.semaphore,
                               reads_regs=site.reads_regs, installer=inst)
        self.run.start()
        how = self.name if not inst.trapped else f"trap: {next(iter(inst.trapped.values()))}"
        return Placed(site.label, how, probe, lambda: host.remove_probe(probe))

    def reason(self, site: Site) -> str:
        """Why the site keeps the trap path, or ""."""
        if site.clause < 0:
            return "not a plan clause"
        if self.run is None:
            why = self.reasons.get(site.clause, "not a probe clause")
        else:
            why = self.run.prog.reason(site.clause) or self.reasons.get(site.clause, "")
        if why:
            return why
        if site.sync:
            return "the clause is synchronous"
        if site.semaphore is not None or site.label.startswith("usdt:"):
            return "usdt probes keep the trap path"
        pl = site.placement
        verdict = verdict_for(pl.path, pl.vaddr)
        return "" if verdict.site is not None else verdict.reason


def jump_strategy(plan: Any, store: Any, support: Any, settings: Any,
                  pid: int | None = None) -> JumpStrategy:
    """The jump path for a plan: its in-target program compiled, its user side built
    with the trap path's own code generator. When no clause can run in the target nothing
    is compiled and the strategy declines every site with its clause's reason.
    Config `ring_full = "drop"` drops events on a full ring (counted, reported at the end)
    instead of making the writer wait; `ring_records` sizes the ring (a power of two)."""
    from runtime.jump.program import build_program
    from runtime.jump.reader import compile_user_side
    from runtime.jump.split import split_plan
    from runtime.output.printf import PrintfFormat

    splits = split_plan(plan, settings.max_strlen)
    if all(s.reason is not None for s in splits.values()):
        return JumpStrategy(None, {i: s.reason or "" for i, s in splits.items()})
    ordered = output_order_reasons(plan, {i: s.reason for i, s in splits.items()})
    config = plan.config
    drop = str(config.get("ring_full", "wait")) == "drop"
    wanted = int(config.get("ring_records", L.DEFAULT_RING_RECORDS) or L.DEFAULT_RING_RECORDS)
    records = 1 << max(0, wanted - 1).bit_length()
    prog = build_program(plan, max_strlen=settings.max_strlen, drop=drop,
                         ring_records=records)
    # Clauses with a site the jump cannot take run partly on the trap path: maps one side
    # would read while the other writes them take their readers to the trap path too.
    partly = trapped_clauses(plan, pid, lambda c: prog.in_target(c) and c not in ordered)
    if partly:
        ordered.update(prog.with_trap_sites(partly))
    user = compile_user_side(prog, support, PrintfFormat.parse)
    run = JumpRun(prog, store, user, start_ns=support.start_ns)
    support.sync_maps = run.flush
    return JumpStrategy(run, ordered)


def trapped_clauses(plan: Any, pid: int | None, in_target: Callable[[int], bool]) -> set[int]:
    """In-target clauses with at least one site (resolved now, in `pid`) that is not
    eligible for a jump. Specs that do not resolve yet are left to placement."""
    from runtime.resolve import resolve_uprobe

    found: set[int] = set()
    for probe in plan.probes:
        if probe.kind not in ("uprobe", "uretprobe") or not in_target(probe.clause):
            continue
        try:
            sites = resolve_uprobe(probe.target, probe.func, probe.offset, probe.address, pid,
                                   want_return=probe.kind == "uretprobe")
        except UprobeError:
            continue
        if any(verdict_for(pl.path, pl.vaddr).site is None for pl in sites):
            found.add(probe.clause)
    return found


OUTPUT_CALLS = frozenset({"printf", "print", "time", "cat", "join", "system"})
STOP_CALLS = frozenset({"exit"})


def _calls(clause: Any, names: frozenset[str]) -> bool:
    from runtime.jump.split import _walk
    from uplang import ast

    return any(isinstance(n, ast.Call) and n.name in names for n in _walk(tuple(clause.body)))


def _prints(clause: Any) -> bool:
    return _calls(clause, OUTPUT_CALLS)


def output_order_reasons(plan: Any, reasons: dict[int, str | None]) -> dict[int, str]:
    """Clauses the program could run that keep the trap path anyway. Output of the two
    paths reaches the user by two routes (the trap path's effect queue, the jump path's
    ring), so their lines could swap: where a probe clause on the trap path prints, every
    printing clause keeps the trap path, and lines stay in hit order; clauses that only
    count and aggregate still jump. exit() takes effect asynchronously from the ring, so
    hits after it would still count: its clause traps."""
    # exit() ends the run at its own hit only where the hit waits for the tracer.
    out = {i: "exit() must stop the run at its own hit" for i, why in reasons.items()
           if not why and _calls(plan.clauses[i], STOP_CALLS)}
    trap_printing = [i for i, why in reasons.items() if why and _prints(plan.clauses[i])]
    if not trap_printing:
        return out
    first = trap_printing[0]
    for i, why in reasons.items():
        if not why and i not in out and _prints(plan.clauses[i]):
            out[i] = f"its output must stay in order with clause {first}'s, which traps"
    return out


def explain(plan: Any, trap: bool, pid: int | None = None) -> list[str]:
    """`--dry-run -v`: per probe site, the path it would take and, for the trap path, why
    (the same words as the run's `-v` lines; a run may still fall back per process, e.g.
    a return probe in a process that can throw C++ exceptions)."""
    from runtime.jump.split import split_plan
    from runtime.placement import Settings
    from runtime.resolve import resolve_uprobe

    splits = split_plan(plan, Settings.of(plan.config).max_strlen)
    lines = []
    for probe in plan.probes:
        if probe.kind == "usdt":
            lines.append(f"{probe.spec}: trap path (usdt probes keep the trap path)")
            continue
        if probe.kind not in ("uprobe", "uretprobe"):
            continue
        try:
            found = resolve_uprobe(probe.target, probe.func, probe.offset, probe.address, pid,
                                   want_return=probe.kind == "uretprobe")
        except UprobeError as e:
            lines.append(f"{probe.spec}: not resolved without the process ({e.message})")
            continue
        split = splits.get(probe.clause)
        clause_why = "not a probe clause" if split is None else split.reason
        for pl in found:
            where = pl.symbol or f"0x{pl.vaddr:x}"
            if probe.offset and pl.symbol:
                where += f"+{probe.offset}"
            why = ("--trap" if trap else clause_why
                   or ("the clause is synchronous" if plan.clauses[probe.clause].sync else "")
                   or verdict_for(pl.path, pl.vaddr).reason)
            how = f"trap path ({why})" if why else "jump path"
            lines.append(f"{probe.kind}:{pl.path}:{where}: {pl.path} file offset "
                         f"0x{pl.file_offset:x}: {how}")
    return lines

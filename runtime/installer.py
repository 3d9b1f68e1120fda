"""Probes into address spaces: installing, following mappings, XOL areas, semaphores.

The engine (runtime/engine.py) dispatches stops; this is what it and the session call to
put probes into traced processes and to keep them there as mappings come and go: the
probe registry, the entry hook, XOL areas injected through a stopped thread, the dynamic
linker's r_brk hook (runtime/rendezvous.py), USDT semaphores and the C++ unwinder hooks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from runtime import lifeline, procfs, rendezvous, retprobes
from runtime import ptrace_ops as pt
from runtime.errors import MemoryReadError, UprobeError
from runtime.procmaps import Mapping, read_maps
from runtime.rendezvous import MappingWatch
from runtime.semaphores import SemaphoreTable
from runtime.threads import OneShot, Process, Thread, extension_hooks
from runtime.uprobes import Probe, ProbeRegistry, install, site_addresses, uninstall
from runtime.xol import AREA_SIZE, REACH, XolArea, map_area

T = TypeVar("T")


class ThreadControl(Protocol):
    """What installing needs of the engine: the traced processes, and stopping one
    thread (to inject an XOL area through it) and letting it go again."""

    procs: dict[int, Process]

    def stop_thread(self, th: Thread) -> bool: ...

    def resume(self, th: Thread) -> None: ...

    def with_stopped_thread(self, proc: Process,
                            fn: Callable[[Thread], tuple[T, list[int]]]) -> T: ...


class Installer:
    """Probes and their sites in every traced process (one per engine)."""

    def __init__(self, control: ThreadControl) -> None:
        self.control = control
        self.registry = ProbeRegistry()
        self.semaphores = SemaphoreTable()
        # Per process: the dynamic linker's rendezvous (see watch_mappings).
        self.watches: dict[int, MappingWatch] = {}
        # Per process, while a batch of probes is placed (see batch).
        self._maps_batch: dict[int, list[Mapping]] | None = None
        # Per process: called once at ld.so's first consistent state (see set_ready_hook).
        self.ready_hooks: dict[int, Callable[[Thread], None]] = {}

    def add(self, probe: Probe) -> None:
        """Register `probe` and install it everywhere; on failure nothing of it stays."""
        self.registry.add(probe)
        try:
            self.install(probe)
        except BaseException:
            self.uninstall(probe)
            self.registry.remove(probe)
            if probe.semaphore is not None:
                with contextlib.suppress(UprobeError):
                    self.sync_semaphores()
            raise

    def remove(self, probe: Probe) -> None:
        """Take `probe` out of every process (its int3s, where no other probe shares
        the site) and lower the semaphores no remaining probe needs."""
        self.uninstall(probe)
        self.registry.remove(probe)
        if probe.semaphore is not None:
            self.sync_semaphores()

    def set_ready_hook(self, proc: Process, callback: Callable[[Thread], None]) -> None:
        """Call `callback(thread)` once, with the thread stopped, when a new image has its
        libraries mapped and none of their code has run: at the dynamic linker's first
        RT_CONSISTENT, which comes before relocation (IFUNC resolvers), the libraries'
        constructors, .preinit_array/.init_array and main. A static program (no r_brk
        hook) has everything mapped at its entry point: the hook is set there. Needs
        watch_mappings first."""
        if proc.pid in self.watches and self.watches[proc.pid].hooked:
            self.ready_hooks[proc.pid] = callback
        else:
            self.set_entry_hook(proc, callback)

    def set_entry_hook(self, proc: Process, callback: Callable[[Thread], None]) -> None:
        """A one-shot int3 at the program's entry point (AT_ENTRY)."""
        entry = procfs.entry_point(proc.pid)
        orig = proc.mem.read(entry, 1)[0]
        proc.oneshots[entry] = OneShot(entry, orig, callback)
        proc.ever_sites.setdefault(entry, orig)
        proc.mem.write(entry, b"\xcc")

    def new_area(self, proc: Process, lo: int, hi: int, size: int = AREA_SIZE) -> XolArea:
        """Inject an XOL area of `size` bytes in [lo, hi) using a stopped thread of `proc`
        (one already held, or one interrupted just for this and let go right after)."""

        def inject(th: Thread) -> tuple[XolArea, list[int]]:
            return map_area(th.tid, proc.mem, proc.xol, lo, hi, size)

        had_trampoline = proc.xol.trampoline
        area = self.control.with_stopped_thread(proc, inject)
        line = lifeline.of(proc)
        if line is not None and proc.xol.trampoline != had_trampoline:
            line.add_trampoline(proc.mem, proc.xol.trampoline)
        return area

    def ensure_lifeline(self, proc: Process) -> None:
        """Before the first int3 goes into `proc`: the in-target SIGTRAP handler that keeps
        it alive if we are killed (runtime/lifeline.py). A process in strict seccomp mode is
        refused first: any system call injected into it would kill it."""
        if lifeline.of(proc) is not None:
            return
        lifeline.check_seccomp(proc.pid)

        def inject(th: Thread) -> tuple[lifeline.LifeLine, list[int]]:
            regs = pt.new_regs()
            pt.getregs(th.tid, pt.regs_address(regs))
            return lifeline.install(th.tid, proc.mem, proc.xol, regs)

        line = self.control.with_stopped_thread(proc, inject)
        proc.extensions[lifeline.NAME] = line
        if proc.trap_action is not None:
            # A guarded process gets our handler back after a kernel reset, not its own:
            # ours chains to its own.
            proc.trap_action = line.handler_action

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Many probes placed at once (a script, `uprobe:libc:*`): /proc/PID/maps is read
        once per process for the whole batch instead of once per probe. Placing happens
        on the tracer thread, so no exec or dlopen is processed meanwhile; the XOL areas
        the batch itself maps are anonymous and never hold a site."""
        if self._maps_batch is not None:
            yield
            return
        self._maps_batch = {}
        try:
            yield
        finally:
            self._maps_batch = None

    def _maps_for_install(self, proc: Process) -> list[Mapping]:
        if self._maps_batch is None:
            return read_maps(proc.pid)
        maps = self._maps_batch.get(proc.pid)
        if maps is None:
            maps = self._maps_batch[proc.pid] = read_maps(proc.pid)
        return maps

    def install(self, probe: Probe) -> int:
        """Install one probe into every traced process; returns the number of sites."""
        n = 0
        for proc in list(self.control.procs.values()):
            maps = self._maps_for_install(proc)
            n += self._install_into(proc, probe, maps)
            if probe.semaphore is not None:
                self._sync_semaphores(proc, maps)
        return n

    def install_all(self, proc: Process, maps: list[Mapping] | None = None) -> None:
        maps = read_maps(proc.pid) if maps is None else maps
        for probe in self.registry:
            self._install_into(proc, probe, maps)
        self._sync_semaphores(proc, maps)

    # -- following mappings: exec, dlopen, dlclose -----------------------------------

    def watch_mappings(self, proc: Process) -> None:
        """Put an internal breakpoint on the dynamic linker's r_brk so that every dlopen
        and dlclose is seen (runtime/rendezvous.py); a static program has none. Works at
        exec (ld.so is mapped before it runs) as well as in a running process."""
        maps = read_maps(proc.pid)
        r_debug = rendezvous.locate_r_debug(proc.pid, proc.mem, maps)
        watch = MappingWatch(r_debug, rendezvous.executable_file_maps(maps))
        self.watches[proc.pid] = watch
        placement = rendezvous.r_brk_placement(proc.pid, proc.mem, maps, r_debug)
        if placement is None:
            return
        watch.hooked = True
        hook = Probe(placement=placement, handler=None, kind="internal", label="rendezvous",
                     call=self._on_r_brk)
        self.ensure_lifeline(proc)
        install(proc, hook, maps, self.new_area, rendezvous.emulate_ret)

    def _on_r_brk(self, th: Thread, regs: Any) -> None:
        """ld.so announces a change of its object list; act once it is consistent."""
        proc = th.proc
        watch = self.watches.get(proc.pid)
        if watch is None:
            return
        if not watch.r_debug:
            # Attached or exec'd before ld.so filled DT_DEBUG in: look again now.
            watch.r_debug = rendezvous.locate_r_debug(proc.pid, proc.mem, read_maps(proc.pid))
        if watch.r_debug:
            try:
                state = rendezvous.read_r_debug(proc.mem, watch.r_debug).state
            except MemoryReadError:
                state = rendezvous.RT_CONSISTENT
            if state != rendezvous.RT_CONSISTENT:
                return
        self.sync_mappings(proc)
        ready = self.ready_hooks.pop(proc.pid, None)
        if ready is not None:
            ready(th)

    def sync_mappings(self, proc: Process) -> None:
        """Bring the process's probes in line with /proc/PID/maps: forget sites whose
        mapping is gone (their int3 went with it: nothing is written there), then install
        pending probes into new mappings and raise their semaphores."""
        proc.maps_generation += 1
        maps = read_maps(proc.pid)
        now = rendezvous.executable_file_maps(maps)
        watch = self.watches.setdefault(proc.pid, MappingWatch())
        known = list(proc.ever_sites) + list(proc.oneshots)
        gone = rendezvous.gone_addresses(known, watch.exec_maps, now)
        # A live site without its int3 lies in a fresh mapping of the same file at the same
        # place (unmapped and mapped again between two syncs): it must be made anew.
        gone += [a for a, bp in proc.sites.items() if proc.mem.read_upto(a, 1) != b"\xcc"]
        line = lifeline.of(proc)
        for addr in gone:
            if line is not None and addr in proc.ever_sites:
                line.drop_site(proc.mem, addr, 1 + len(proc.tails.get(addr, b"")))
            proc.tails.pop(addr, None)
            proc.sites.pop(addr, None)
            proc.ever_sites.pop(addr, None)
            proc.oneshots.pop(addr, None)
        watch.exec_maps = now
        self.install_all(proc, maps)

    def _sync_semaphores(self, proc: Process, maps: list[Mapping]) -> None:
        needed = {(p.placement.dev, p.placement.ino, p.semaphore)
                  for p in self.registry if p.semaphore is not None}
        self.semaphores.sync(proc.pid, proc.mem, maps, needed)

    def sync_semaphores(self) -> None:
        """After a probe was removed: lower counters no remaining probe needs."""
        for proc in list(self.control.procs.values()):
            self._sync_semaphores(proc, read_maps(proc.pid))

    def _install_into(self, proc: Process, probe: Probe, maps: Any) -> int:
        if probe.installer is not None:
            # Another placement strategy (the jump path); it falls back on install_trap.
            return probe.installer.install(self.control, proc, probe, maps)
        return self.install_trap(proc, probe, maps)

    def install_trap(self, proc: Process, probe: Probe, maps: Any) -> int:
        """Install `probe` in `proc` with int3s. A site inside bytes that another strategy
        patched (a jump) makes that strategy give its probes there to the trap path too."""
        sites = site_addresses(maps, probe)
        if not sites:
            return 0
        for evict in extension_hooks(proc, "evict"):
            for addr in sites:
                for other in evict(self.control, proc, addr):
                    self.install_trap(proc, other, maps)
        self.ensure_lifeline(proc)
        if probe.kind == "return" and not proc.xol.trampoline:
            # Entry sites may all be emulated (endbr64): the trampoline needs an area anyway.
            self.new_area(proc, sites[0] - REACH, sites[0] + REACH)
        if probe.kind == "return" and not proc.unwinder_hooked:
            proc.unwinder_hooked = True
            self._hook_unwinder(proc, maps)
        return install(proc, probe, maps, self.new_area)

    def _hook_unwinder(self, proc: Process, maps: Any) -> None:
        """Internal probes on the C++ unwinder, so that return trampolines are out of the
        stack whenever it walks it (see runtime/retprobes.py). Per process: fork children
        inherit the sites, an exec hooks the new image again."""
        exe = os.path.realpath(procfs.exe(proc.pid))
        for placement, starts in retprobes.unwinder_sites(maps, exe):
            call = retprobes.on_unwind_start if starts else retprobes.on_catch
            hook = Probe(placement=placement, handler=None, kind="internal",
                         label=f"unwinder:{placement.symbol}", call=call)
            install(proc, hook, maps, self.new_area)

    def uninstall(self, probe: Probe) -> None:
        for proc in list(self.control.procs.values()):
            if probe.installer is not None:
                probe.installer.uninstall(self.control, proc, probe)
            uninstall(proc, probe)

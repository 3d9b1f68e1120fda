"""The ptrace engine: one waitpid loop that dispatches every stop of every traced thread.

Only the thread that created the engine (the tracer thread) may call its methods: the
kernel ties a tracee to the tracer thread that attached it. The hit path is kept short
and inlined in the waitpid loop: waitpid, one GETREGS into a reused struct, the handlers,
one POKEUSER of rip (SETREGS when more than rip changed), one CONT.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from runtime import procfs, rendezvous, retprobes, trapguard
from runtime import ptrace_ops as pt
from runtime.errors import MemoryReadError, TargetError, UprobeError
from runtime.memory import ProcessMemory
from runtime.procmaps import Mapping, read_maps
from runtime.rendezvous import MappingWatch
from runtime.semaphores import SemaphoreTable
from runtime.threads import OneShot, Process, ReturnInstance, Thread
from runtime.uprobes import Probe, ProbeRegistry, install, site_addresses, uninstall
from runtime.xol import AREA_SIZE, REACH, XolArea, XolSpace, map_area

SIGTRAP = int(signal.SIGTRAP)
T = TypeVar("T")
# The wait status of a SIGTRAP signal-delivery stop (no ptrace event bits).
TRAP_STOP = (SIGTRAP << 8) | 0x7F
WAIT_FLAGS = pt.WALL | pt.WNOTHREAD | os.WUNTRACED
STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
SIGTRAP_BIT = 1 << (signal.SIGTRAP - 1)
TRACE_OPTIONS = (
    pt.O_TRACESYSGOOD | pt.O_TRACECLONE | pt.O_TRACEFORK | pt.O_TRACEVFORK | pt.O_TRACEEXEC
    | pt.O_TRACEVFORKDONE
)


def sigtrap_pending(tid: int) -> bool:
    """Whether a SIGTRAP is queued for the thread (an int3 it executed whose stop the
    kernel has not reported yet: interrupt traps are reported before queued signals)."""
    return bool(procfs.signal_mask(tid, "SigPnd") & SIGTRAP_BIT)


class Engine:
    """Traced processes and threads, the probe registry, and the event loop.

    `on_wake` runs when the wake-up helper (`waker_pid`) reports.
    """

    def __init__(self, follow_forks: bool = True) -> None:
        self.follow_forks = follow_forks
        self.procs: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self.registry = ProbeRegistry()
        self.regs = pt.new_regs()
        self.regs_addr = pt.regs_address(self.regs)
        self.main_pid = 0
        self.main_status: int | None = None
        self.waker_pid = 0
        self.on_wake: Callable[[], None] = lambda: None
        # Told (pid, tid) when a traced thread is gone (exit, or an exec in another thread).
        self.on_thread_exit: Callable[[int, int], None] | None = None
        # Told the pid of a process that exec'd, at its new entry point (libraries mapped),
        # before pending probes go in: the place to resolve probe specs again.
        self.on_exec: Callable[[int], None] = lambda pid: None
        # Per process: the dynamic linker's rendezvous (see watch_mappings).
        self.watches: dict[int, MappingWatch] = {}
        self.semaphores = SemaphoreTable()
        self.detaching = False
        # Stops of threads whose creation event has not been seen yet.
        self._early: dict[int, int] = {}

    # -- processes and threads -------------------------------------------------------

    def add_process(self, pid: int, spawned: bool, started: bool = True) -> Process:
        proc = Process(pid=pid, mem=ProcessMemory(pid), spawned=spawned, started=started)
        self.procs[pid] = proc
        return proc

    def add_thread(self, proc: Process, tid: int, started: bool = True) -> Thread:
        th = Thread(tid=tid, proc=proc, started=started)
        proc.threads[tid] = th
        self.threads[tid] = th
        return th

    def _forget_thread(self, th: Thread) -> None:
        self.threads.pop(th.tid, None)
        th.proc.threads.pop(th.tid, None)

    def _forget_process(self, proc: Process) -> None:
        for th in list(proc.threads.values()):
            self._forget_thread(th)
        proc.mem.close()
        self.procs.pop(proc.pid, None)
        self.watches.pop(proc.pid, None)
        self.semaphores.forget(proc.pid)

    # -- the loop --------------------------------------------------------------------

    def run(self, until: Callable[[], bool]) -> None:
        """Dispatch stops until `until()` holds (checked before every wait).

        The hot path, a SIGTRAP at one of our copy-and-jump sites, is inlined here with
        everything it touches bound to locals: per hit one GETREGS (a PEEKUSER of rip
        when no probe reads registers: ProbeRegistry.lean), the handlers, one POKEUSER
        of rip (SETREGS when a handler or the instruction changed more) and one CONT.
        Everything else goes through dispatch()."""
        waitpid = os.waitpid
        dispatch = self.dispatch
        threads_get = self.threads.get
        fast = pt.fast_ptrace
        regs = self.regs
        rp = self.regs_addr
        getregs, setregs, peekuser, pokeuser, cont = (
            pt.PTRACE_GETREGS, pt.PTRACE_SETREGS, pt.PTRACE_PEEKUSER, pt.PTRACE_POKEUSER,
            pt.PTRACE_CONT)
        rip_offset = pt.RIP_OFFSET
        on_entry = retprobes.on_entry
        registry = self.registry
        while not until():
            try:
                tid, status = waitpid(-1, WAIT_FLAGS)
            except ChildProcessError:
                return
            th = threads_get(tid)
            if status != TRAP_STOP or th is None:
                dispatch(tid, status)
                continue
            th.stopped = True
            try:
                proc = th.proc
                stale = False
                if registry.lean:
                    # No handler reads registers: rip alone finds the site, GETREGS only
                    # where the site or the trap guard needs the rest.
                    rip = fast(peekuser, tid, rip_offset, 0)
                    if rip == -1:  # never a user-space rip
                        raise pt.failure(peekuser, tid)
                    addr = rip - 1
                    bp = proc.sites.get(addr)
                    if bp is not None and bp.lean and proc.trap_action is None:
                        stale = True
                    elif fast(getregs, tid, 0, rp) == -1:
                        raise pt.failure(getregs, tid)
                else:
                    if fast(getregs, tid, 0, rp) == -1:
                        raise pt.failure(getregs, tid)
                    addr = regs.rip - 1
                    bp = proc.sites.get(addr)
                if bp is None:
                    self._on_trap_elsewhere(th, addr)
                    continue
                regs.rip = addr
                for call in bp.calls:
                    call(th, regs)
                if bp.has_return:
                    on_entry(proc, th, regs, bp)
                if bp.rip_only and not th.regs_dirty and regs.rip == addr:
                    # Only rip moves, to the slot: one word instead of the whole struct.
                    if fast(pokeuser, tid, rip_offset, bp.slot_word) == -1:
                        raise pt.failure(pokeuser, tid)
                else:
                    th.regs_dirty = False
                    if stale:
                        # Writing back registers never read would corrupt the thread.
                        raise UprobeError(
                            f"a handler at {addr:#x} changed a register although its probe "
                            "was added with reads_regs=False")
                    if regs.rip == addr and not (bp.emulates and bp.ops.emulate(regs, proc.mem)):
                        regs.rip = bp.slot
                    if fast(setregs, tid, 0, rp) == -1:
                        raise pt.failure(setregs, tid)
                if proc.trap_action is not None:
                    self._keep_trap_action(th)
                if th.pending or th.held or self.detaching:
                    self.resume(th)
                    continue
                th.stopped = False
                if fast(cont, tid, 0, 0) == -1:
                    raise pt.failure(cont, tid)
            except BaseException as e:
                if not self._absorb(th, e):
                    raise

    def dispatch(self, tid: int, status: int) -> None:
        th = self.threads.get(tid)
        if th is None:
            if tid == self.waker_pid and tid:
                if os.WIFSTOPPED(status):
                    os.kill(tid, signal.SIGCONT)
                    self.on_wake()
            else:
                self._early[tid] = status
            return
        try:
            if status & 0xFF == 0x7F:
                th.stopped = True
                if status >> 8 == SIGTRAP:
                    self._on_trap(th)
                elif status >> 16:
                    self._on_event(th, status >> 16, (status >> 8) & 0xFF)
                else:
                    th.pending.append((status >> 8) & 0xFF)
                    self.resume(th)
            else:
                self._on_exit(th, status)
        except BaseException as e:
            if not self._absorb(th, e):
                raise

    def _absorb(self, th: Thread, exc: BaseException) -> bool:
        """After a stop's handling raised: True when the failure only means the thread
        died meanwhile (its exit is reported later); False to let it propagate, with the
        thread marked so that detach finishes the interrupted stop."""
        if isinstance(exc, pt.PtraceFailed):
            if exc.errno != errno.ESRCH:
                return False
            th.stopped = False
            return True
        if isinstance(exc, MemoryReadError) and not procfs.alive(th.tid):
            th.stopped = False
            return True
        # A handler failed (or Ctrl-C) mid-hit: detach must finish this stop.
        th.unfinished = True
        return False

    def resume(self, th: Thread) -> None:
        """Let a stopped thread go, delivering one pending signal; held threads and every
        thread during detach stay stopped."""
        if th.held or self.detaching:
            return
        th.stopped = False
        pt.try_cont(th.tid, th.pending.pop(0) if th.pending else 0)

    # -- SIGTRAP: breakpoint hits ----------------------------------------------------

    def _on_trap(self, th: Thread) -> None:
        """A SIGTRAP met outside run()'s inlined hot path: the same handling."""
        tid = th.tid
        regs = self.regs
        pt.getregs(tid, self.regs_addr)
        addr = regs.rip - 1
        proc = th.proc
        bp = proc.sites.get(addr)
        if bp is None:
            self._on_trap_elsewhere(th, addr)
            return
        regs.rip = addr
        for call in bp.calls:
            call(th, regs)
        if bp.has_return:
            retprobes.on_entry(proc, th, regs, bp)
        th.regs_dirty = False
        if regs.rip == addr and not (bp.emulates and bp.ops.emulate(regs, proc.mem)):
            regs.rip = bp.slot
        pt.setregs(tid, self.regs_addr)
        if proc.trap_action is not None:
            self._keep_trap_action(th)
        self.resume(th)

    def _on_trap_elsewhere(self, th: Thread, addr: int) -> None:
        """A SIGTRAP (registers read) at the return trampoline or at no live site."""
        proc = th.proc
        regs = self.regs
        if addr == proc.xol.trampoline and addr:
            done = retprobes.on_return(th, regs)
            th.landing = regs.rip
            for inst in done:
                for probe in inst.probes:
                    probe.call(th, regs)
            th.regs_dirty = False
            pt.setregs(th.tid, self.regs_addr)
            if proc.trap_action is not None:
                self._keep_trap_action(th)
            self.resume(th)
            return
        self._on_foreign_trap(th, addr)

    def _on_foreign_trap(self, th: Thread, addr: int) -> None:
        """A SIGTRAP that is not a live site of ours."""
        proc = th.proc
        shot = proc.oneshots.pop(addr, None)
        if shot is not None:
            proc.mem.write(addr, bytes((shot.orig,)))
            self.regs.rip = addr
            pt.setregs(th.tid, self.regs_addr)
            shot.callback(th)
            if proc.trap_action is not None:
                pt.getregs(th.tid, self.regs_addr)
                self._keep_trap_action(th)
            self.resume(th)
            return
        if pt.siginfo_code(th.tid) == pt.SI_KERNEL and addr in proc.ever_sites:
            if proc.mem.read_upto(addr, 1) != b"\xcc":
                # Our int3, removed after the thread hit it: run the instruction again.
                self.regs.rip = addr
                pt.setregs(th.tid, self.regs_addr)
                self.resume(th)
                return
        # The program's own int3 or a SIGTRAP it raised: it uses SIGTRAP, so from now on
        # keep its disposition safe from our hits (see runtime/trapguard.py).
        action: bytes | None
        try:
            action, deferred = trapguard.read_action(th.tid, proc.mem, proc.xol, self.regs.rsp,
                                                     delivering=True)
        except (MemoryReadError, TargetError):
            action, deferred = proc.trap_action, []
        proc.trap_action = action
        th.pending.append(signal.SIGTRAP)
        th.pending += deferred
        self.resume(th)

    def _keep_trap_action(self, th: Thread) -> None:
        """After our hit: undo the kernel's reset of the program's SIGTRAP disposition."""
        proc = th.proc
        assert proc.trap_action is not None
        th.pending += trapguard.restore_if_reset(th.tid, proc.mem, proc.xol, self.regs.rsp,
                                                 proc.trap_action)

    def guard_traps(self, proc: Process) -> None:
        """A program that already catches or ignores SIGTRAP when tracing starts: keep a
        copy of its disposition (read in a stopped thread, borrowed if need be)."""
        if not any(trapguard.trap_disposition(proc.pid)):
            return
        th = next((t for t in proc.threads.values() if t.stopped and t.started), None)
        borrowed = th is None
        if th is None:
            th = next((t for t in proc.threads.values() if self.stop_thread(t)), None)
            if th is None:
                return
        regs = pt.new_regs()
        pt.getregs(th.tid, pt.regs_address(regs))
        proc.trap_action, deferred = trapguard.read_action(th.tid, proc.mem, proc.xol,
                                                           regs.rsp, delivering=False)
        th.pending += deferred
        if borrowed:
            self.resume(th)

    # -- ptrace events ---------------------------------------------------------------

    def _on_event(self, th: Thread, event: int, sig: int) -> None:
        if event == pt.EVENT_STOP:
            self._on_event_stop(th, sig)
        elif event == pt.EVENT_CLONE:
            new = pt.geteventmsg(th.tid)
            if new not in self.threads:
                self.add_thread(th.proc, new, started=False)
                self._replay_early(new)
            self.resume(th)
        elif event in (pt.EVENT_FORK, pt.EVENT_VFORK):
            self._on_fork(th, pt.geteventmsg(th.tid), event == pt.EVENT_VFORK)
        elif event == pt.EVENT_EXEC:
            self._on_exec(th)
        elif event == pt.EVENT_VFORK_DONE:
            # The vfork child exec'd or exited: the parent thread runs again.
            for ext in list(th.proc.extensions.values()):
                ext.vfork_done(th.proc, th.tid)
            self.resume(th)
        else:
            self.resume(th)

    def _on_event_stop(self, th: Thread, sig: int) -> None:
        if not th.started:
            th.started = True
            if not th.proc.started:
                self._on_child_start(th.proc, th)
                return
            self.resume(th)
            return
        if th.interrupted:
            th.interrupted = False
            return  # the requester keeps it stopped
        th.group_stopped = False
        if sig in STOP_SIGNALS and not self.detaching:
            # Group-stop: stay stopped without holding the tracee in ptrace-stop.
            th.stopped = False
            th.group_stopped = True
            pt.listen(th.tid)
            return
        self.resume(th)

    def _replay_early(self, tid: int) -> None:
        status = self._early.pop(tid, None)
        if status is not None:
            self.dispatch(tid, status)

    def _on_fork(self, th: Thread, child_pid: int, vfork: bool) -> None:
        """The child shares our int3s (vfork: the very memory) and the forking thread's
        pending trampolines, so it starts with copies of the parent's state."""
        parent = th.proc
        child = self.add_process(child_pid, spawned=parent.spawned, started=False)
        child.xol = XolSpace(list(parent.xol.areas), parent.xol.trampoline, parent.xol.syscall_insn)
        child.sites = dict(parent.sites)
        child.ever_sites = dict(parent.ever_sites)
        child.unwinder_hooked = parent.unwinder_hooked
        cth = self.add_thread(child, child_pid, started=False)
        cth.returns = [ReturnInstance(r.orig, r.slot, r.probes, r.armed) for r in th.returns]
        child.vfork = vfork
        child.trap_action = parent.trap_action
        for name, ext in parent.extensions.items():
            copied = ext.forked(child, th.tid)
            if copied is not None:
                child.extensions[name] = copied
        watch = self.watches.get(parent.pid)
        if watch is not None:
            self.watches[child_pid] = watch.copy()
        self.semaphores.fork(parent.pid, child_pid, vfork)
        self._replay_early(child_pid)
        self.resume(th)

    def _on_child_start(self, proc: Process, th: Thread) -> None:
        proc.started = True
        if self.follow_forks or proc.vfork:
            # A vfork child shares the parent's memory: it cannot be cleaned, so it stays
            # traced until it execs or exits.
            for ext in list(proc.extensions.values()):
                ext.started(self, proc, th)
            self.resume(th)
            return
        self._clean_process(proc)
        pt.detach(th.tid, th.pending.pop(0) if th.pending else 0)
        self._forget_process(proc)

    def _on_exec(self, th: Thread) -> None:
        """A new image: every address-space state is gone; the probes go in again at the
        new entry point, once the dynamic linker has mapped the libraries."""
        proc = th.proc
        for other in list(proc.threads.values()):
            if other is not th:
                self._forget_thread(other)
                self._thread_gone(proc.pid, other.tid)
        if th.tid != proc.pid:
            self._forget_thread(th)
            th = self.add_thread(proc, proc.pid)
            th.stopped = True
        if not proc.vfork:
            self._undo_writes_after_exec(proc)
            # Same reasoning for semaphore raises: lowered only where the descriptor reads.
            self.semaphores.release(proc.pid, proc.mem)
        proc.mem.close()
        proc.mem = ProcessMemory(proc.pid)
        proc.xol = XolSpace()
        proc.sites = {}
        proc.oneshots = {}
        proc.ever_sites = {}
        proc.unwinder_hooked = False
        proc.extensions = {}
        # Handlers do not survive an exec, an ignored SIGTRAP does: guard it from the
        # entry hook's own trap on.
        proc.trap_action = trapguard.ignored_action(proc.pid)
        th.returns = []
        self.semaphores.forget(proc.pid)
        self.watches.pop(proc.pid, None)
        if not self.follow_forks and proc.pid != self.main_pid:
            pt.detach(th.tid, 0)
            self._forget_process(proc)
            return
        self.watch_mappings(proc)
        self.set_entry_hook(proc, self._after_exec)
        self.resume(th)

    @staticmethod
    def _undo_writes_after_exec(proc: Process) -> None:
        """Our /proc/PID/mem descriptor still reads only if it was opened on the new image
        (an attach that raced with the exec): then int3s we wrote are in the new text and
        must go. One opened before the exec reads nothing now (the old memory is gone).
        Not for a vfork child: its descriptor shows the parent's live memory."""
        for addr, orig in proc.ever_sites.items():
            if proc.mem.read_upto(addr, 1) == b"\xcc":
                try:
                    proc.mem.write(addr, bytes((orig,)))
                except MemoryReadError:
                    continue

    def _on_exit(self, th: Thread, status: int) -> None:
        proc = th.proc
        self._forget_thread(th)
        self._thread_gone(proc.pid, th.tid)
        if th.tid == proc.pid:
            # The leader is reported last: the whole process is gone.
            self._forget_process(proc)
            if proc.pid == self.main_pid:
                self.main_status = status

    def _thread_gone(self, pid: int, tid: int) -> None:
        if self.on_thread_exit is not None:
            self.on_thread_exit(pid, tid)

    # -- placement -------------------------------------------------------------------

    def set_entry_hook(self, proc: Process, callback: Callable[[Thread], None]) -> None:
        """A one-shot int3 at the program's entry point (AT_ENTRY)."""
        entry = procfs.entry_point(proc.pid)
        orig = proc.mem.read(entry, 1)[0]
        proc.oneshots[entry] = OneShot(entry, orig, callback)
        proc.ever_sites.setdefault(entry, orig)
        proc.mem.write(entry, b"\xcc")

    def stop_thread(self, th: Thread) -> bool:
        """Interrupt `th` and dispatch other stops until it is stopped; False if it died.
        May run inside a handler (a probe added at a hit): the shared register struct of
        the hit being handled is saved around the nested dispatching."""
        if th.stopped:
            return True
        th.interrupted = True
        if not pt.interrupt(th.tid):
            return False
        saved = bytes(self.regs)
        try:
            self.run(lambda: th.stopped or th.tid not in self.threads)
        finally:
            ctypes.memmove(ctypes.addressof(self.regs), saved, len(saved))
        return th.tid in self.threads

    def new_area(self, proc: Process, lo: int, hi: int, size: int = AREA_SIZE) -> XolArea:
        """Inject an XOL area of `size` bytes in [lo, hi) using a stopped thread of `proc`
        (one already held, or one interrupted just for this and let go right after)."""

        def inject(th: Thread) -> tuple[XolArea, list[int]]:
            return map_area(th.tid, proc.mem, proc.xol, lo, hi, size)

        return self.with_stopped_thread(proc, inject)

    def with_stopped_thread(self, proc: Process,
                            fn: Callable[[Thread], tuple[T, list[int]]]) -> T:
        """Run `fn(thread)` (code injection) with a stopped thread of `proc`: one already
        held, or one interrupted just for this and let go right after. `fn` returns its
        result and the signals that arrived meanwhile, delivered later."""
        for _ in range(8):
            th = next((t for t in proc.threads.values() if t.stopped and t.started), None)
            borrowed = th is None
            if th is None:
                leader_first = sorted(proc.threads.values(), key=lambda t: t.tid != proc.pid)
                th = next((t for t in leader_first if self.stop_thread(t)), None)
                if th is None:
                    raise TargetError(f"pid {proc.pid}: no thread left to inject code")
                if sigtrap_pending(th.tid):
                    # It just executed an int3: let that hit be handled, then try again.
                    self.resume(th)
                    continue
            result, pending = fn(th)
            th.pending += pending
            if borrowed:
                self.resume(th)
            return result
        raise TargetError(f"pid {proc.pid}: could not stop a thread to inject code")

    def install(self, probe: Probe) -> int:
        """Install one probe into every traced process; returns the number of sites."""
        n = 0
        for proc in list(self.procs.values()):
            maps = read_maps(proc.pid)
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
        self.watches[proc.pid] = MappingWatch(r_debug, rendezvous.executable_file_maps(maps))
        placement = rendezvous.r_brk_placement(proc.pid, proc.mem, maps, r_debug)
        if placement is None:
            return
        hook = Probe(placement=placement, handler=None, kind="internal", label="rendezvous",
                     call=self._on_r_brk)
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

    def sync_mappings(self, proc: Process) -> None:
        """Bring the process's probes in line with /proc/PID/maps: forget sites whose
        mapping is gone (their int3 went with it: nothing is written there), then install
        pending probes into new mappings and raise their semaphores."""
        maps = read_maps(proc.pid)
        now = rendezvous.executable_file_maps(maps)
        watch = self.watches.setdefault(proc.pid, MappingWatch())
        known = list(proc.ever_sites) + list(proc.oneshots)
        gone = rendezvous.gone_addresses(known, watch.exec_maps, now)
        # A live site without its int3 lies in a fresh mapping of the same file at the same
        # place (unmapped and mapped again between two syncs): it must be made anew.
        gone += [a for a, bp in proc.sites.items() if proc.mem.read_upto(a, 1) != b"\xcc"]
        for addr in gone:
            proc.sites.pop(addr, None)
            proc.ever_sites.pop(addr, None)
            proc.oneshots.pop(addr, None)
        watch.exec_maps = now
        self.install_all(proc, maps)

    def _after_exec(self, th: Thread) -> None:
        self.on_exec(th.proc.pid)
        self.sync_mappings(th.proc)

    def _sync_semaphores(self, proc: Process, maps: list[Mapping]) -> None:
        needed = {(p.placement.dev, p.placement.ino, p.semaphore)
                  for p in self.registry if p.semaphore is not None}
        self.semaphores.sync(proc.pid, proc.mem, maps, needed)

    def sync_semaphores(self) -> None:
        """After a probe was removed: lower counters no remaining probe needs."""
        for proc in list(self.procs.values()):
            self._sync_semaphores(proc, read_maps(proc.pid))

    def _install_into(self, proc: Process, probe: Probe, maps: Any) -> int:
        if probe.installer is not None:
            # Another placement strategy (the jump path); it falls back on install_trap.
            return probe.installer.install(self, proc, probe, maps)
        return self.install_trap(proc, probe, maps)

    def install_trap(self, proc: Process, probe: Probe, maps: Any) -> int:
        """Install `probe` in `proc` with int3s. A site inside bytes that another strategy
        patched (a jump) makes that strategy give its probes there to the trap path too."""
        for ext in list(proc.extensions.values()):
            for addr in site_addresses(maps, probe):
                for other in ext.evict(self, proc, addr):
                    self.install_trap(proc, other, maps)
        if probe.kind == "return" and not proc.xol.trampoline:
            sites = site_addresses(maps, probe)
            if not sites:
                return 0
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
        for proc in list(self.procs.values()):
            if probe.installer is not None:
                probe.installer.uninstall(self, proc, probe)
            uninstall(proc, probe)

    # -- leaving ---------------------------------------------------------------------

    def _clean_process(self, proc: Process) -> None:
        """Put back every byte we changed in the text. Threads may keep running, except
        where an extension (the jump path) has multi-byte patches: then every thread of
        the process is stopped (detach, or a fork child before its first instruction)."""
        for ext in proc.extensions.values():
            ext.clean(proc)
        for addr, orig in proc.ever_sites.items():
            try:
                if proc.mem.read_upto(addr, 1) == b"\xcc":
                    proc.mem.write(addr, bytes((orig,)))
            except MemoryReadError:
                continue
        proc.sites = {}
        proc.oneshots = {}
        for th in proc.threads.values():
            retprobes.restore_all(proc, th)
        self.semaphores.release(proc.pid, proc.mem)

    def _all_stopped(self) -> bool:
        return all(t.stopped for t in self.threads.values())

    def detach_all(self) -> None:
        """Remove every int3, stop every thread, restore pending return addresses, fix any
        thread caught between a trap and its report, then PTRACE_DETACH each thread."""
        self.detaching = True
        for proc in list(self.procs.values()):
            for addr, orig in proc.ever_sites.items():
                try:
                    proc.mem.write(addr, bytes((orig,)))
                except MemoryReadError:
                    pass
            proc.sites = {}
            proc.oneshots = {}
        for th in list(self.threads.values()):
            th.held = False
            if not th.stopped and th.started:
                th.interrupted = True
                pt.interrupt(th.tid)
        while True:
            self.run(self._all_stopped)
            if not self._drain_pending_traps():
                break
        for proc in list(self.procs.values()):
            self._clean_process(proc)
            # Threads with a signal to deliver go last: a fatal one ends the whole
            # process, and threads still traced then would wait for us as zombies.
            ordered = sorted(proc.threads.values(), key=lambda t: bool(t.pending))
            for th in ordered:
                if not pt.detach(th.tid, th.pending.pop(0) if th.pending else 0):
                    self._reap_traced(th.tid)
            self._forget_process(proc)

    @staticmethod
    def _reap_traced(tid: int) -> None:
        """A thread that died under us while being detached: collect its exit report,
        or it stays a traced zombie and its process can never be reaped."""
        try:
            os.waitpid(tid, pt.WALL)
        except ChildProcessError:
            pass

    def _drain_pending_traps(self) -> bool:
        """Threads stopped right after executing one of our int3s (or the trampoline)
        still have SIGTRAP queued; let each take it now so detach does not deliver it.
        A thread about to execute the trampoline is moved to the real return address."""
        again = False
        regs = self.regs
        for th in list(self.threads.values()):
            proc = th.proc
            try:
                pt.getregs(th.tid, self.regs_addr)
            except pt.PtraceFailed:
                continue
            tramp = proc.xol.trampoline
            if th.unfinished:
                # Its trap was reported but the hit never completed: undo the trap.
                th.unfinished = False
                if regs.rip - 1 in proc.ever_sites:
                    regs.rip -= 1
                elif tramp and regs.rip - 1 == tramp:
                    regs.rip = th.landing
                pt.setregs(th.tid, self.regs_addr)
                continue
            if tramp and regs.rip == tramp:
                # The `ret` already popped the slot; the int3 has not run yet.
                retprobes.on_return(th, regs)
                pt.setregs(th.tid, self.regs_addr)
                continue
            near = regs.rip - 1
            if (near in proc.ever_sites or (tramp and near == tramp)) and sigtrap_pending(th.tid):
                th.stopped = False
                pt.try_cont(th.tid, 0)
                again = True
        return again

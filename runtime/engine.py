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
from typing import TypeVar

from runtime import procfs, retprobes, trapguard
from runtime import ptrace_ops as pt
from runtime.detach import clean_process, restore_text
from runtime.errors import MemoryReadError, TargetError, UprobeError
from runtime.installer import Installer
from runtime.memory import ProcessMemory
from runtime.semaphores import SemaphoreTable
from runtime.threads import Process, ReturnInstance, Thread, extension_hooks
from runtime.xol import XolSpace

SIGTRAP = int(signal.SIGTRAP)
T = TypeVar("T")
# The wait status of a SIGTRAP signal-delivery stop (no ptrace event bits).
TRAP_STOP = (SIGTRAP << 8) | 0x7F
WAIT_FLAGS = pt.WALL | pt.WNOTHREAD | os.WUNTRACED
STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
TRACE_OPTIONS = (
    pt.O_TRACESYSGOOD | pt.O_TRACECLONE | pt.O_TRACEFORK | pt.O_TRACEVFORK | pt.O_TRACEEXEC
    | pt.O_TRACEVFORKDONE
)


class Engine:
    """Traced processes and threads, the probe registry, and the event loop.

    `on_wake` runs when the wake-up helper (`waker_pid`) reports.
    """

    def __init__(self, follow_forks: bool = True) -> None:
        self.follow_forks = follow_forks
        self.procs: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self.installer = Installer(self)
        # The hot loop reads `lean` from it on every hit.
        self.registry = self.installer.registry
        self.regs = pt.new_regs()
        self.regs_addr = pt.regs_address(self.regs)
        self.main_pid = 0
        self.main_status: int | None = None
        self.waker_pid = 0
        self.on_wake: Callable[[], None] = lambda: None
        # Told (pid, tid) when a traced thread is gone (exit, or an exec in another thread).
        self.on_thread_exit: Callable[[int, int], None] | None = None
        # Told the pid of a process that exec'd, once its libraries are mapped,
        # before pending probes go in: the place to resolve probe specs again.
        self.on_exec: Callable[[int], None] = lambda pid: None
        self.detaching = False
        # Stops of threads whose creation event has not been seen yet.
        self._early: dict[int, int] = {}
        # Told the stops of threads the engine does not know; True when it took the stop
        # (system-wide tracing: threads seized for a process not taken over yet).
        self.on_foreign: Callable[[int, int], bool] | None = None

    @property
    def semaphores(self) -> SemaphoreTable:
        return self.installer.semaphores

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

    def forget_process(self, proc: Process) -> None:
        for th in list(proc.threads.values()):
            self._forget_thread(th)
        proc.mem.close()
        self.procs.pop(proc.pid, None)
        self.installer.watches.pop(proc.pid, None)
        self.installer.ready_hooks.pop(proc.pid, None)
        self.installer.semaphores.forget(proc.pid)

    # -- processes taken over by system-wide tracing (runtime/systemwide.py) ------------

    def adopt_exec(self, pid: int, signals: list[int], drop_sigstop: bool = False) -> Process:
        """A process seized during its exec (system-wide tracing), stopped at the exec
        event or at its first instruction: traced from here on as a followed exec is.
        `signals` are delivered as it resumes."""
        proc = self.add_process(pid, spawned=False)
        proc.root = True
        th = self.add_thread(proc, pid)
        th.stopped = True
        th.pending += signals
        th.drop_sigstop = drop_sigstop
        self._on_exec(th)
        return proc

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
            elif self.on_foreign is None or not self.on_foreign(tid, status):
                self._early[tid] = status
            return
        try:
            if status & 0xFF == 0x7F:
                th.stopped = True
                if status >> 8 == SIGTRAP:
                    self._on_trap(th)
                elif status >> 16:
                    self._on_event(th, status >> 16, (status >> 8) & 0xFF)
                elif th.drop_sigstop and status >> 8 == signal.SIGSTOP:
                    th.drop_sigstop = False
                    self.resume(th)
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
        if th.group_stopped and not th.pending:
            # Borrowed from a job-control stop (to inject code): a plain continue would
            # run it although its process is stopped. SIGSTOP (no handler can run) puts it
            # back into the group stop, reported as an event stop that listens again.
            pt.try_cont(th.tid, signal.SIGSTOP)
            return
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
            for hook in extension_hooks(th.proc, "vfork_done"):
                hook(th.proc, th.tid)
            self.resume(th)
        else:
            self.resume(th)

    def _on_event_stop(self, th: Thread, sig: int) -> None:
        if not th.started:
            th.started = True
            if not th.proc.started:
                self._on_child_start(th.proc, th)
                return
            for hook in extension_hooks(th.proc, "thread_started"):
                hook(th.proc, th)
            self.resume(th)
            return
        if th.interrupted:
            th.interrupted = False
            # A stop signal here: the process is in a job-control stop (resume keeps it so).
            th.group_stopped = sig in STOP_SIGNALS
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
        child.tails = dict(parent.tails)
        child.unwinder_hooked = parent.unwinder_hooked
        cth = self.add_thread(child, child_pid, started=False)
        cth.returns = [ReturnInstance(r.orig, r.slot, r.probes, r.armed) for r in th.returns]
        child.vfork = vfork
        child.trap_action = parent.trap_action
        for name, ext in parent.extensions.items():
            copied = ext.forked(child, th.tid)
            if copied is not None:
                child.extensions[name] = copied
        watch = self.installer.watches.get(parent.pid)
        if watch is not None:
            self.installer.watches[child_pid] = watch.copy()
        self.installer.semaphores.fork(parent.pid, child_pid, vfork)
        self._replay_early(child_pid)
        self.resume(th)

    def _on_child_start(self, proc: Process, th: Thread) -> None:
        proc.started = True
        if self.follow_forks or proc.vfork:
            # A vfork child shares the parent's memory: it cannot be cleaned, so it stays
            # traced until it execs or exits.
            for hook in extension_hooks(proc, "started"):
                hook(self, proc, th)
            self.resume(th)
            return
        clean_process(proc, self.installer.semaphores)
        pt.detach(th.tid, th.pending.pop(0) if th.pending else 0)
        self.forget_process(proc)

    def _on_exec(self, th: Thread) -> None:
        """A new image: every address-space state is gone; the probes go in again once
        the dynamic linker has mapped the libraries, before any of their code runs."""
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
            # Our /proc/PID/mem descriptor still reads only if it was opened on the new
            # image (an attach that raced with the exec): then int3s we wrote are in the
            # new text and must go. One opened before the exec reads nothing now. Not for
            # a vfork child: its descriptor shows the parent's live memory.
            restore_text(proc)
            # Same reasoning for semaphore raises: lowered only where the descriptor reads.
            self.installer.semaphores.release(proc.pid, proc.mem)
        proc.mem.close()
        proc.mem = ProcessMemory(proc.pid)
        proc.xol = XolSpace()
        proc.sites = {}
        proc.oneshots = {}
        proc.ever_sites = {}
        proc.tails = {}
        proc.unwinder_hooked = False
        proc.maps_generation += 1
        proc.extensions = {}
        # Handlers do not survive an exec, an ignored SIGTRAP does: guard it from the
        # entry hook's own trap on.
        proc.trap_action = trapguard.ignored_action(proc.pid)
        th.returns = []
        self.installer.semaphores.forget(proc.pid)
        self.installer.watches.pop(proc.pid, None)
        self.installer.ready_hooks.pop(proc.pid, None)
        if not self.follow_forks and proc.pid != self.main_pid and not proc.root:
            pt.detach(th.tid, 0)
            self.forget_process(proc)
            return
        self.installer.watch_mappings(proc)
        self.installer.set_ready_hook(proc, self._after_exec)
        self.resume(th)

    def _on_exit(self, th: Thread, status: int) -> None:
        proc = th.proc
        self._forget_thread(th)
        self._thread_gone(proc.pid, th.tid)
        if th.tid == proc.pid:
            # The leader is reported last: the whole process is gone.
            self.forget_process(proc)
            if proc.pid == self.main_pid:
                self.main_status = status

    def _thread_gone(self, pid: int, tid: int) -> None:
        if self.on_thread_exit is not None:
            self.on_thread_exit(pid, tid)

    # -- stopping one thread ---------------------------------------------------------

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
                if procfs.sigtrap_pending(th.tid):
                    # It just executed an int3: let that hit be handled, then try again.
                    self.resume(th)
                    continue
            result, pending = fn(th)
            th.pending += pending
            if borrowed:
                self.resume(th)
            return result
        raise TargetError(f"pid {proc.pid}: could not stop a thread to inject code")

    # -- exec ------------------------------------------------------------------------

    def _after_exec(self, th: Thread) -> None:
        self.on_exec(th.proc.pid)
        self.installer.sync_mappings(th.proc)

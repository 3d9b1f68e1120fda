"""Timed sampling of a traced program's threads (`profile:hz:N`).

At each tick every thread of every traced process that is on a CPU is stopped with
PTRACE_INTERRUPT, its registers are read, the handler runs with a HitContext as at a probe
hit, and the thread goes on. As bpftrace's profile probe (a perf event that fires only for
a thread on a CPU), a thread blocked in a system call is no sample: its state in
/proc/PID/task/TID/stat is not R, or, when it went to sleep between that read and the
interrupt, its registers show a system call cut short (orig_rax >= 0, rax an -ERESTART*
or -EINTR code; the kernel restarts the call transparently). A wall-clock sampler
(`wallclock:hz:N`) takes every thread, blocked or not.
A sample can catch a thread inside an XOL slot (running a displaced instruction): its rip
is then in the XOL area, which symbolises to no function (`func` is empty); `ustack` reads a
thread caught at the start of a slot as being at the probed site (runtime/context.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from runtime import procfs
from runtime import ptrace_ops as pt
from runtime.threads import Process, Thread


class ThreadStopper(Protocol):
    """What sampling needs of the engine: the traced threads, stopping one, resuming it."""

    detaching: bool
    procs: dict[int, Process]

    def stop_thread(self, th: Thread) -> bool: ...

    def resume(self, th: Thread) -> None: ...


# -EINTR, -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK: what rax
# holds when an interrupt cut a blocking system call short.
_CUT_SHORT = frozenset((1 << 64) - e for e in (4, 512, 513, 514, 516))
_NO_SYSCALL = (1 << 64) - 1  # orig_rax outside a system call


# Builds the handler's context for a stopped thread (the session's HitContext).
ContextMaker = Callable[[Thread, Any, "SampleProbe"], Any]


@dataclass(eq=False)
class SampleProbe:
    """What `ctx.probe` is in a sample: no placement, no symbol (the handler asks rip)."""

    label: str
    kind: str = "profile"
    placement: Any = None
    symbol: str = ""
    sync: bool = False


class Sampler:
    """One `profile` clause: `tick()` runs on the tracer thread (a session timer, removed
    with the sampler: Session.remove_sampler)."""

    def __init__(self, engine: ThreadStopper, context: ContextMaker,
                 handler: Callable[[Any], Any], label: str, on_cpu: bool = True) -> None:
        self.engine = engine
        self.on_cpu = on_cpu
        self.context = context
        self.handler = handler
        self.probe = SampleProbe(label)
        # Own register struct: the engine's is live while a hit is being handled.
        self.regs = pt.new_regs()
        self.regs_addr = pt.regs_address(self.regs)
        self.samples = 0
        self.skipped = 0  # threads found off a CPU (on_cpu samplers)
        self.timer: Any = None  # the session's timer that ticks it

    def tick(self) -> None:
        engine = self.engine
        if engine.detaching:
            return
        for proc in list(engine.procs.values()):
            for th in list(proc.threads.values()):
                if self._sampleable(th) and (not self.on_cpu or self._running(proc.pid, th)):
                    self._sample(th)

    @staticmethod
    def _sampleable(th: Thread) -> bool:
        # A thread already in a stop, or being stopped (the tracer may be waiting for it
        # inside an XOL injection when the timer fires), is someone else's business:
        # sampling it would resume it behind their back.
        return (th.started and not th.stopped and not th.held and not th.group_stopped
                and not th.interrupted)

    def _running(self, pid: int, th: Thread) -> bool:
        stat = procfs.thread_stat(pid, th.tid)
        if stat and stat[0] != "R":
            self.skipped += 1
            return False
        return True

    def _sample(self, th: Thread) -> None:
        engine = self.engine
        if not engine.stop_thread(th):
            return  # it exited meanwhile
        try:
            pt.getregs(th.tid, self.regs_addr)
        except pt.PtraceFailed:
            engine.resume(th)
            return
        if self.on_cpu and self.regs.orig_rax != _NO_SYSCALL and self.regs.rax in _CUT_SHORT:
            # It fell asleep in a system call after the state was read: not on a CPU.
            self.skipped += 1
            engine.resume(th)
            return
        self.samples += 1
        try:
            self.handler(self.context(th, self.regs, self.probe))
        finally:
            engine.resume(th)

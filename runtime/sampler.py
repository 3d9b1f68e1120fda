"""Timed sampling of a traced program's threads (`profile:hz:N`).

At each tick every running thread of every traced process is stopped with
PTRACE_INTERRUPT, its registers are read, the handler runs with a HitContext as at a probe
hit, and the thread goes on. Unlike bpftrace's profile probe (a perf event that fires only
for a thread on a CPU), a thread blocked in a system call is sampled too: ptrace cannot
tell the two apart cheaply, and the kernel restarts the interrupted call transparently.
A sample can catch a thread inside an XOL slot (running a displaced instruction): its rip
is then in the XOL area, which symbolises to no function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from runtime import ptrace_ops as pt
from runtime.threads import Process, Thread


class ThreadStopper(Protocol):
    """What sampling needs of the engine: the traced threads, stopping one, resuming it."""

    detaching: bool
    procs: dict[int, Process]

    def stop_thread(self, th: Thread) -> bool: ...

    def resume(self, th: Thread) -> None: ...


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
                 handler: Callable[[Any], Any], label: str) -> None:
        self.engine = engine
        self.context = context
        self.handler = handler
        self.probe = SampleProbe(label)
        # Own register struct: the engine's is live while a hit is being handled.
        self.regs = pt.new_regs()
        self.regs_addr = pt.regs_address(self.regs)
        self.samples = 0
        self.timer: Any = None  # the session's timer that ticks it

    def tick(self) -> None:
        engine = self.engine
        if engine.detaching:
            return
        for proc in list(engine.procs.values()):
            for th in list(proc.threads.values()):
                if self._sampleable(th):
                    self._sample(th)

    @staticmethod
    def _sampleable(th: Thread) -> bool:
        # A thread already in a stop, or being stopped (the tracer may be waiting for it
        # inside an XOL injection when the timer fires), is someone else's business:
        # sampling it would resume it behind their back.
        return (th.started and not th.stopped and not th.held and not th.group_stopped
                and not th.interrupted)

    def _sample(self, th: Thread) -> None:
        engine = self.engine
        if not engine.stop_thread(th):
            return  # it exited meanwhile
        try:
            pt.getregs(th.tid, self.regs_addr)
        except pt.PtraceFailed:
            engine.resume(th)
            return
        self.samples += 1
        try:
            self.handler(self.context(th, self.regs, self.probe))
        finally:
            engine.resume(th)

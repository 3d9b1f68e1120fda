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
from typing import TYPE_CHECKING, Any

from runtime import ptrace_ops as pt
from runtime.context import HitContext

if TYPE_CHECKING:
    from runtime.session import Session
    from runtime.threads import Thread


@dataclass(eq=False)
class SampleProbe:
    """What `ctx.probe` is in a sample: no placement, no symbol (the handler asks rip)."""

    label: str
    kind: str = "profile"
    placement: Any = None
    symbol: str = ""
    sync: bool = False


class Sampler:
    """One `profile` clause: `tick()` runs on the tracer thread (a session timer)."""

    def __init__(self, session: Session, handler: Callable[[HitContext], Any],
                 label: str) -> None:
        self.session = session
        self.handler = handler
        self.probe = SampleProbe(label)
        # Own register struct: the engine's is live while a hit is being handled.
        self.regs = pt.new_regs()
        self.regs_addr = pt.regs_address(self.regs)
        self.samples = 0
        # Session timers cannot be removed: a sampler no longer wanted (the REPL's deleted
        # clause) is switched off instead.
        self.active = True

    def tick(self) -> None:
        engine = self.session.engine
        if engine.detaching or not self.active:
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
        engine = self.session.engine
        if not engine.stop_thread(th):
            return  # it exited meanwhile
        try:
            pt.getregs(th.tid, self.regs_addr)
        except pt.PtraceFailed:
            engine.resume(th)
            return
        self.samples += 1
        try:
            self.handler(HitContext(self.session, th, self.regs, self.probe))  # type: ignore[arg-type]
        finally:
            engine.resume(th)

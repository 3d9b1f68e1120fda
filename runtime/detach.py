"""Leaving a target as it was: text restored, return addresses back, every thread let go.

Every byte we ever replaced is written back by one routine (`restore_text`), used at
detach, when a fork child that is not followed is cleaned, and after an exec that raced
an attach. One-byte writes are atomic with respect to instruction fetch, so running
threads need no stop for that; the rest of a detach stops every thread, finishes the
stops in flight, rewrites pending return addresses and detaches threads with a signal to
deliver last (docs/architecture.md "Detach").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, Protocol

from runtime import procfs, retprobes
from runtime import ptrace_ops as pt
from runtime.errors import MemoryReadError
from runtime.semaphores import SemaphoreTable
from runtime.threads import Process, Thread

INT3 = b"\xcc"


class Detaching(Protocol):
    """What a detach needs of the engine."""

    detaching: bool
    procs: dict[int, Process]
    threads: dict[int, Thread]
    regs: Any
    regs_addr: Any

    @property
    def semaphores(self) -> SemaphoreTable: ...

    def run(self, until: Callable[[], bool]) -> None: ...

    def forget_process(self, proc: Process) -> None: ...


def restore_text(proc: Process) -> None:
    """Put back the original byte wherever one of our int3s still is. A byte that is no
    longer our int3 (the mapping went, or was replaced) is left alone. The rest of each
    instruction (`tails`) goes back first, while its first byte still traps."""
    for addr, tail in proc.tails.items():
        try:
            if proc.mem.read_upto(addr, 1) == INT3:
                proc.mem.write(addr + 1, tail)
        except MemoryReadError:
            continue
    for addr, orig in proc.ever_sites.items():
        try:
            if proc.mem.read_upto(addr, 1) == INT3:
                proc.mem.write(addr, bytes((orig,)))
        except MemoryReadError:
            continue


def clean_process(proc: Process, semaphores: SemaphoreTable) -> None:
    """Everything of ours out of one process: text, pending return addresses, raised
    semaphores. Threads may keep running, except where an extension (the jump path) has
    multi-byte patches: then every thread of the process is stopped (detach, or a fork
    child before its first instruction)."""
    for ext in proc.extensions.values():
        ext.clean(proc)
    restore_text(proc)
    proc.sites = {}
    proc.oneshots = {}
    for th in proc.threads.values():
        retprobes.restore_all(proc, th)
    semaphores.release(proc.pid, proc.mem)


def detach_all(engine: Detaching) -> None:
    """Remove every int3, stop every thread, restore pending return addresses, fix any
    thread caught between a trap and its report, then PTRACE_DETACH each thread."""
    engine.detaching = True
    for proc in list(engine.procs.values()):
        restore_text(proc)
        proc.sites = {}
        proc.oneshots = {}
    for th in list(engine.threads.values()):
        th.held = False
        if not th.stopped and th.started:
            th.interrupted = True
            pt.interrupt(th.tid)

    def all_stopped() -> bool:
        return all(t.stopped for t in engine.threads.values())

    while True:
        engine.run(all_stopped)
        if not _drain_pending_traps(engine):
            break
    for proc in list(engine.procs.values()):
        clean_process(proc, engine.semaphores)
        # Threads with a signal to deliver go last: a fatal one ends the whole process,
        # and threads still traced then would wait for us as zombies.
        ordered = sorted(proc.threads.values(), key=lambda t: bool(t.pending))
        for th in ordered:
            if not pt.detach(th.tid, th.pending.pop(0) if th.pending else 0):
                _reap_traced(th.tid)
        engine.forget_process(proc)


def release_process(engine: Detaching, proc: Process) -> None:
    """Let one process go while the others stay traced (system-wide tracing: a process
    taken over half-way, or one that turned out not to be wanted): stop its threads,
    clean it, detach them. Its threads are held meanwhile, so their stops wait for us."""
    for th in proc.threads.values():
        th.held = True
        if not th.stopped and th.started:
            th.interrupted = True
            if not pt.interrupt(th.tid):
                th.stopped = True  # gone: nothing to wait for
    engine.run(lambda: all(t.stopped for t in proc.threads.values())
               or proc.pid not in engine.procs)
    if proc.pid not in engine.procs:
        return
    clean_process(proc, engine.semaphores)
    for th in sorted(proc.threads.values(), key=lambda t: bool(t.pending)):
        th.held = False
        if not pt.detach(th.tid, th.pending.pop(0) if th.pending else 0):
            _reap_traced(th.tid)
    engine.forget_process(proc)


def _reap_traced(tid: int) -> None:
    """A thread that died under us while being detached: collect its exit report, or it
    stays a traced zombie and its process can never be reaped."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(tid, pt.WALL)


def _drain_pending_traps(engine: Detaching) -> bool:
    """Threads stopped right after executing one of our int3s (or the trampoline) still
    have SIGTRAP queued; let each take it now so detach does not deliver it. A thread
    about to execute the trampoline is moved to the real return address."""
    again = False
    regs = engine.regs
    for th in list(engine.threads.values()):
        proc = th.proc
        try:
            pt.getregs(th.tid, engine.regs_addr)
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
            pt.setregs(th.tid, engine.regs_addr)
            continue
        if tramp and regs.rip == tramp:
            # The `ret` already popped the slot; the int3 has not run yet.
            retprobes.on_return(th, regs)
            pt.setregs(th.tid, engine.regs_addr)
            continue
        near = regs.rip - 1
        if (near in proc.ever_sites or (tramp and near == tramp)) \
                and procfs.sigtrap_pending(th.tid):
            th.stopped = False
            pt.try_cont(th.tid, 0)
            again = True
    return again

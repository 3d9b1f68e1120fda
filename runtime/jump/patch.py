"""Live patching of a running multi-threaded process.

A `jmp rel32` is 5 bytes, often more than one instruction, and no write of that size is
atomic with respect to instruction fetch. So: stop every thread (PTRACE_INTERRUPT, and list
/proc/PID/task again until no thread is missing: clone events keep arriving meanwhile),
step out any thread whose rip lies strictly inside the bytes being replaced (it would
resume in the middle of the jmp), write all the bytes with one pwrite, resume. The same
stop serves the reverse at removal and detach.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runtime import ptrace_ops as pt
from runtime.errors import TargetError
from runtime.threads import Process, Thread

MAX_STEPS = 64
MAX_ROUNDS = 64


def _task_ids(pid: int) -> set[int]:
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except FileNotFoundError:
        return set()


def _peek_rip(tid: int) -> int:
    rip = pt.fast_ptrace(pt.PTRACE_PEEKUSER, tid, pt.RIP_OFFSET, 0)
    if rip == -1:
        raise pt.failure(pt.PTRACE_PEEKUSER, tid)
    return rip & 0xFFFF_FFFF_FFFF_FFFF


def step_out(th: Thread, lo: int, hi: int) -> None:
    """Single-step `th` (stopped) until its rip is outside (lo, hi): the instructions run
    in place, as they would have. Signals that stop it meanwhile are kept for later."""
    tid = th.tid
    for _ in range(MAX_STEPS):
        if not lo < _peek_rip(tid) < hi:
            return
        pt.singlestep(tid)
        _, status = os.waitpid(tid, pt.WALL)
        if not os.WIFSTOPPED(status):
            raise TargetError(f"thread {tid} ended while it was stepped out of {lo:#x}")
        sig = os.WSTOPSIG(status)
        if sig != signal.SIGTRAP and status >> 16 == 0:
            th.pending.append(sig)
    raise TargetError(f"thread {tid} did not leave the bytes at {lo:#x} in {MAX_STEPS} steps")


@contextmanager
def all_stopped(engine: Any, proc: Process) -> Iterator[list[Thread]]:
    """Every thread of `proc` stopped and held for the body (the list: those to check for
    rip); threads this stopped are let go afterwards, others stay as they were. Uses the
    engine's stop_thread (interrupt, dispatching other events until it stops) and run
    (while a thread listed in /proc is not known yet: its clone event is on its way)."""
    held: list[Thread] = []
    mine: list[Thread] = []
    already = [t for t in proc.threads.values() if t.held and t.stopped]
    try:
        for _ in range(MAX_ROUNDS):
            for th in list(proc.threads.values()):
                if th.held or not th.started:
                    continue  # a new thread stays in its creation stop until resumed
                was_stopped = th.stopped
                if engine.stop_thread(th):
                    th.held = True
                    held.append(th)
                    if not was_stopped:
                        mine.append(th)
            unknown = _task_ids(proc.pid) - set(proc.threads)
            if not unknown and all(t.held or not t.started for t in proc.threads.values()):
                break
            if unknown:
                engine.run(lambda: not (_task_ids(proc.pid) - set(proc.threads)))
        else:
            raise TargetError(f"pid {proc.pid}: its threads could not all be stopped")
        yield [t for t in already + held if t.tid in proc.threads]
    finally:
        for th in held:
            th.held = False
        for th in mine:
            if th.tid in proc.threads and th.stopped:
                engine.resume(th)


def write_patch(proc: Process, threads: list[Thread], addr: int, data: bytes) -> None:
    """With every thread stopped: move threads out of (addr, addr+len), then one write."""
    for th in threads:
        try:
            step_out(th, addr, addr + len(data))
        except pt.PtraceFailed:
            continue  # gone meanwhile: its exit is reported later
    proc.mem.write(addr, data)

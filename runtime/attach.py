"""Attaching to a running process: seize every thread, and say why when the kernel refuses.

PTRACE_SEIZE stops nothing; threads created while we seize show up in /proc/PID/task (or
arrive through TRACECLONE from a thread already seized), so the list is read again until
it is stable. Session.attach builds on this (runtime/session.py).
"""

from __future__ import annotations

import os
import threading

from runtime import procfs
from runtime import ptrace_ops as pt
from runtime.engine import TRACE_OPTIONS, Engine
from runtime.errors import TargetError, TracePermissionError, UprobeError
from runtime.threads import Process

CAP_SYS_PTRACE = 19


def seize_process(pid: int) -> None:
    """PTRACE_SEIZE the thread group leader; a refusal names its likely reason."""
    if not procfs.exists(pid):
        raise TargetError(f"no process with pid {pid}")
    try:
        pt.seize(pid, TRACE_OPTIONS)
    except TracePermissionError:
        raise why_refused(pid) from None


def seize_all_threads(engine: Engine, proc: Process) -> None:
    """Seize every thread of the process, again until no new thread shows up (threads
    may be created meanwhile; those made by a seized thread arrive through TRACECLONE)."""
    pid = proc.pid
    me = threading.get_native_id()
    while True:
        try:
            tids = procfs.tasks(pid)
        except TargetError:
            raise TargetError(f"process {pid} exited while attaching") from None
        new = [t for t in tids if t not in engine.threads]
        if not new:
            return
        for tid in new:
            try:
                pt.seize(tid, TRACE_OPTIONS)
            except TargetError:
                continue  # the thread exited meanwhile
            except UprobeError:
                if procfs.tracer_of(tid) != me:
                    raise
                # Auto-attached through TRACECLONE: its clone event registers it.
                engine.add_thread(proc, tid, started=False)
                continue
            engine.add_thread(proc, tid)


def attach_failure(pid: int, exe: str, exc: BaseException) -> BaseException:
    """The error to report when attaching to `pid` (which ran `exe`) failed with `exc`
    after the first seize: ESRCH from /proc files or memory that vanished means the
    process exited or exec'd meanwhile."""
    if isinstance(exc, (UprobeError, ProcessLookupError)):
        # ESRCH on /proc/PID/mem: no address space left, the process is exiting.
        if isinstance(exc, ProcessLookupError) or not procfs.alive(pid):
            return TargetError(f"process {pid} exited while attaching")
        if exe_or_empty(pid) != exe and not isinstance(exc, TargetError):
            return TargetError(f"process {pid} ran a new program while attaching; try again")
    return exc


def exe_or_empty(pid: int) -> str:
    """The program `pid` runs, or "" when that cannot be read."""
    try:
        return procfs.exe(pid)
    except UprobeError:
        return ""


def why_refused(pid: int) -> UprobeError:
    """The kernel said EPERM to PTRACE_SEIZE: name the likely reason in one line."""
    fields = procfs.status(pid)
    if not fields or fields.get("State", "")[:1] in ("Z", "X"):
        return TargetError(f"process {pid} has exited")
    tracer = int(fields.get("TracerPid", "0") or 0)
    if tracer:
        return TracePermissionError(
            f"cannot trace pid {pid}: it is already traced by pid {tracer} "
            "(a debugger or another tracer)")
    mine = procfs.status("self")
    can_ptrace = int(mine.get("CapEff", "0"), 16) >> CAP_SYS_PTRACE & 1
    uid = fields.get("Uid", "").split()
    if not can_ptrace and uid and uid[0] != str(os.geteuid()):
        return TracePermissionError(
            f"cannot trace pid {pid}: it belongs to another user (uid {uid[0]}); "
            "run uprobe as that user or as root")
    scope = procfs.ptrace_scope()
    if scope and not can_ptrace:
        return TracePermissionError(
            f"cannot trace pid {pid}: kernel.yama.ptrace_scope={scope} forbids it "
            "(run as root, or lower the setting)")
    return TracePermissionError(f"cannot trace pid {pid}: operation not permitted")

"""The fanotify listener: one thread that answers every permission event on probed files.

Its one rule: answer promptly and never wait for anything. A permission event left
unanswered stalls that open (an exec of the probed program, a load of the probed library)
everywhere on the machine. So this thread only reads small /proc files of the opening
thread, answers on the spot whatever needs no tracing, and hands the rest to the tracer
thread (`hand_off`), which must do the PTRACE_SEIZE itself: the kernel ties a tracee to
the thread that seized it. It never opens a probed file, never spawns a process and never
takes a lock the tracer holds while tracing.

Three kinds of events need the tracer (see docs/architecture.md "System-wide probes"):
- `exec`: a direct execve of a probed program, raised in do_open_execat under alloc_bprm,
  before the kernel takes the exec locks. The tracer seizes, then answers.
- `interp`: the file opened inside bprm_execve (as an ELF or #! interpreter), where the
  exec credential lock is held and a seize would wait for our own answer. The listener
  queues a SIGSTOP for the thread, answers, and the tracer seizes and swallows the
  SIGSTOP: no instruction of the new image runs untraced.
- `open`: a plain open of a probed library (ld.so or dlopen). The tracer seizes and
  interrupts, then answers; the stop comes before the library is mapped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from runtime import procfs
from runtime.fanotify import FAN_OPEN_EXEC_PERM, FAN_Q_OVERFLOW, Event, FanotifyGroup

SYS_TGKILL = 234  # x86-64
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Request:
    """Work for the tracer thread. `fd` is the event to answer after seizing (-1: already
    answered). `kind` is exec, interp, open, or refused (a process another tracer holds:
    `tracer` is that tracer's pid), overflow (the kernel dropped events), or failed (the
    listener stopped on an error, `comm` says which)."""

    kind: str
    tid: int
    tgid: int
    fd: int
    comm: str = ""
    tracer: int = 0


@dataclass(frozen=True)
class TaskStatus:
    tgid: int
    tracer: int
    comm: str


def task_status(tid: int) -> TaskStatus | None:
    """Tgid, TracerPid and Name of a thread; None when it is gone."""
    fields = procfs.status(tid)
    try:
        return TaskStatus(int(fields["Tgid"]), int(fields["TracerPid"]), fields["Name"])
    except (KeyError, ValueError):
        return None


def exec_stage(tid: int) -> str:
    """Where in the kernel the thread's open happens, from /proc/TID/stack: "interp"
    inside bprm_execve (the exec locks are held), "exec" for the program a direct execve
    opens (alloc_bprm: no lock yet), "" for a plain open. When the stack cannot be read,
    an exec-time open counts as "interp", whose handling is safe in both places."""
    stack = procfs.kernel_stack(tid)
    if stack is None:
        return "unknown"
    if "bprm_execve" in stack or "load_script" in stack or "load_elf_binary" in stack:
        return "interp"
    if "alloc_bprm" in stack or "do_open_execat" in stack:
        return "exec"
    return ""


class Listener:
    """The listener thread over `group`. `wanted(comm)` filters library opens (execs are
    filtered at their exec stop, where comm is the new program's). `tracer_tid` is the
    thread that owns the traces: events from its tracees are answered at once."""

    def __init__(self, group: FanotifyGroup, hand_off: Callable[[Request], None],
                 tracer_tid: int, wanted: Callable[[str], bool] | None = None) -> None:
        self.group = group
        self.hand_off = hand_off
        self.tracer_tid = tracer_tid
        self.wanted = wanted
        self.own_pid = os.getpid()
        self.events = 0
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._loop, name="uprobe-fanotify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread (the group stays open: the caller closes it after this)."""
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"s")
        if self._thread.is_alive():
            self._thread.join()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.group.fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._stop_r in ready:
                    return
                for event in self.group.read():
                    self.events += 1
                    self.decide(event)
        except Exception as exc:  # noqa: BLE001 - told to the tracer, which ends the run
            # Nobody would answer the next events: the run must end, which closes the
            # group, and the kernel then allows whatever is pending.
            self.hand_off(Request("failed", 0, 0, -1, comm=str(exc)))

    def decide(self, event: Event) -> None:
        """Answer the event now, or hand it to the tracer; either way exactly once."""
        if not event.is_permission:
            if event.mask & FAN_Q_OVERFLOW:
                self.hand_off(Request("overflow", 0, 0, -1))
            if event.fd >= 0:
                os.close(event.fd)
            return
        try:
            request = self.classify(event)
        except Exception:  # noqa: BLE001 - whatever went wrong, the open must not wait
            request = None
        if request is None or request.fd < 0:
            # Answered here (an interp request's SIGSTOP is queued already).
            self.group.allow(event.fd)
        if request is not None:
            self.hand_off(request)

    def classify(self, event: Event) -> Request | None:
        """What to do with a permission event: None to answer it here;
        a request with fd -1 to answer it here and tell the tracer; else the tracer
        answers after seizing."""
        tid = event.pid
        st = task_status(tid)
        if st is None or st.tgid == self.own_pid or st.tracer == self.tracer_tid:
            # Gone, one of our own opens, or already traced by us (the engine follows it).
            return None
        if st.tracer:
            return Request("refused", tid, st.tgid, -1, st.comm, st.tracer)
        stage = exec_stage(tid)
        if stage == "unknown":
            stage = "interp" if event.mask & FAN_OPEN_EXEC_PERM else ""
        if stage == "interp":
            # No seize now: the exec holds the lock a seize takes. The queued SIGSTOP holds
            # the new image at its first instruction until the tracer has seized it.
            try:
                tgkill(st.tgid, tid, signal.SIGSTOP)
            except OSError:
                return None
            return Request("interp", tid, st.tgid, -1, st.comm)
        if stage == "exec":
            return Request("exec", tid, st.tgid, event.fd, st.comm)
        if self.wanted is not None and not self.wanted(st.comm):
            return None
        return Request("open", tid, st.tgid, event.fd, st.comm)


def tgkill(tgid: int, tid: int, sig: int) -> None:
    """A signal to one thread: the very thread that is exec'ing must take it."""
    if _libc.syscall(SYS_TGKILL, tgid, tid, sig) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))

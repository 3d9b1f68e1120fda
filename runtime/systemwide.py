"""System-wide probes, the tracer's side: fanotify marks on the probed files, the scan of
running processes, and taking over the processes the listener hands us.

Everything here runs on the tracer thread (the one that seizes), except `hand_off`, which
the listener thread calls. The order at start is the one that misses nothing: marks first
(every later open of a probed file is reported), then /proc/*/maps for the processes that
had the file mapped before. See runtime/listener.py for the three kinds of events.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runtime import procfs
from runtime import ptrace_ops as pt
from runtime.attach import seize_all_threads
from runtime.detach import release_process
from runtime.engine import TRACE_OPTIONS, Engine
from runtime.errors import TargetError, TracePermissionError, UprobeError
from runtime.fanotify import FAN_OPEN_EXEC_PERM, FAN_OPEN_PERM, FanotifyGroup
from runtime.listener import Listener, Request, task_status, tgkill
from runtime.procmaps import parse_maps_line
from runtime.threads import Process

ET_EXEC = 2
PT_INTERP = 3
SIGSTOP = int(signal.SIGSTOP)


def is_program(path: str) -> bool:
    """Whether the file is started by exec (an executable: ET_EXEC, or with PT_INTERP),
    rather than loaded by the dynamic linker (a shared library)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF":
            raise TargetError(f"{path} is not an ELF file")
        e_type = struct.unpack_from("<H", head, 16)[0]
        phoff = struct.unpack_from("<Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        if e_type == ET_EXEC:
            return True
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == PT_INTERP
               for i in range(len(table) // max(phentsize, 1)))


@dataclass(frozen=True)
class WatchedFile:
    path: str
    dev: int
    ino: int
    program: bool

    @property
    def mask(self) -> int:
        # Programs are opened by execve (FAN_OPEN_EXEC_PERM); libraries by ld.so or dlopen
        # with a plain openat, for which only FAN_OPEN_PERM fires.
        return FAN_OPEN_EXEC_PERM if self.program else FAN_OPEN_PERM


def watched_file(path: str) -> WatchedFile:
    st = os.stat(path)
    return WatchedFile(path, st.st_dev, st.st_ino, is_program(path))


@dataclass
class Pending:
    """A thread seized for a request whose first stop has not been seen yet."""

    kind: str
    tid: int
    tgid: int


@dataclass
class Counts:
    """What the listener and the tracer did, for -v and the benchmarks."""

    adopted: int = 0
    scanned: int = 0
    filtered: int = 0
    refused: int = 0
    lost: int = 0
    failed: list[str] = field(default_factory=list)


class SystemWide:
    """Marks, listener and takeover for one engine. `call_soon(fn)` runs fn on the tracer
    thread (the session's); `report(line)` tells the user about processes left alone."""

    def __init__(self, engine: Engine, call_soon: Callable[[Callable[[], None]], None],
                 report: Callable[[str], None], comms: Iterable[str] = (),
                 skip_pids: Iterable[int] = ()) -> None:
        self.engine = engine
        self.call_soon = call_soon
        self.report = report
        self.comms = frozenset(c[:15] for c in comms)
        self.skip = {os.getpid(), *skip_pids}
        self.files: list[WatchedFile] = []
        self.group: FanotifyGroup | None = None
        self.listener: Listener | None = None
        self.requests: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.pending: dict[int, Pending] = {}
        self.refused: set[int] = set()
        self.counts = Counts()
        self.closed = False
        engine.on_foreign = self.on_foreign

    # -- start ------------------------------------------------------------------------

    def wanted(self, comm: str) -> bool:
        return not self.comms or comm in self.comms

    def start(self, paths: Iterable[str]) -> None:
        """Mark every probed file, start the listener, then take over the processes that
        have one of the files mapped already."""
        for path in dict.fromkeys(paths):
            self.files.append(watched_file(path))
        self.group = FanotifyGroup()
        try:
            for wf in self.files:
                self.group.mark(wf.path, wf.mask)
            self.listener = Listener(self.group, self.hand_off, threading.get_native_id(),
                                     self.wanted)
            self.listener.start()
            self.scan()
        except BaseException:
            self.close()
            raise

    def hand_off(self, request: Request) -> None:
        """From the listener thread: queue the request and wake the tracer."""
        self.requests.put(request)
        self.call_soon(self.drain)

    def scan(self) -> None:
        """/proc/*/maps: every process with a probed file mapped now is attached."""
        idents = {(wf.dev, wf.ino) for wf in self.files}
        needles = {f" {ino} " for _, ino in idents}
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.skip:
                continue
            pid = int(name)
            if pid in self.engine.procs or not _maps_contain(pid, idents, needles):
                continue
            st = task_status(pid)
            if st is None:
                continue
            if st.tracer:
                self._refuse(pid, st.comm, st.tracer)
                continue
            if not self.wanted(st.comm):
                self.counts.filtered += 1
                continue
            try:
                attach_running(self.engine, pid)
            except TracePermissionError:
                st = task_status(pid)
                if st is not None and st.tracer:
                    self._refuse(pid, st.comm, st.tracer)
                continue
            except (UprobeError, ProcessLookupError, OSError) as exc:
                # Gone while we looked, or refused: the others go on.
                self._failed(pid, exc)
                continue
            self.counts.scanned += 1

    # -- requests from the listener -------------------------------------------------

    def drain(self) -> None:
        while True:
            try:
                req = self.requests.get_nowait()
            except queue.Empty:
                return
            try:
                self.handle(req)
            finally:
                if req.fd >= 0 and self.group is not None:
                    self.group.allow(req.fd)

    def handle(self, req: Request) -> None:
        """Seize for one request; the caller answers the event afterwards."""
        if req.kind == "refused":
            self._refuse(req.tgid, req.comm, req.tracer)
            return
        if req.kind == "failed":
            raise UprobeError(f"system-wide tracing stopped: the fanotify listener failed: "
                              f"{req.comm}")
        if req.kind == "overflow":
            self.counts.lost += 1
            self.report("warning: the kernel dropped file events (fanotify queue overflow); "
                        "some processes may not be traced")
            return
        if self.closed:
            if req.kind == "interp":
                _undo_stop(req.tgid, req.tid)
            return
        ours = self.engine.threads.get(req.tid) or self.engine.threads.get(req.tgid)
        if ours is not None:
            # Attached by the scan meanwhile: the engine follows it already.
            if req.kind == "interp":
                ours.drop_sigstop = True
            return
        try:
            pt.seize(req.tid, TRACE_OPTIONS)
        except TracePermissionError:
            if req.kind == "interp":
                _undo_stop(req.tgid, req.tid)
            st = task_status(req.tid)
            if st is not None and st.tracer and st.tracer != threading.get_native_id():
                self._refuse(req.tgid, st.comm, st.tracer)
            return
        except TargetError:
            return  # gone
        if req.kind == "open":
            # The thread is inside openat, held by our unanswered event: the stop comes
            # as soon as it returns, before the library can be mapped.
            pt.interrupt(req.tid)
        pending = Pending(req.kind, req.tid, req.tgid)
        self.pending[req.tid] = pending
        self.pending[req.tgid] = pending

    def _failed(self, pid: int, exc: BaseException) -> None:
        """A process we could not take over (it exited meanwhile, most often): said once."""
        line = f"pid {pid}: {getattr(exc, 'message', None) or exc}"
        self.counts.failed.append(line)
        if pid not in self.refused:
            self.refused.add(pid)
            self.report(f"warning: not traced: {line}")

    def _refuse(self, pid: int, comm: str, tracer: int) -> None:
        if pid in self.refused:
            return
        self.refused.add(pid)
        self.counts.refused += 1
        self.report(f"warning: pid {pid} ({comm}) is already traced by pid {tracer} "
                    "(a debugger or another tracer): left alone")

    # -- first stops of seized threads (engine hook) -----------------------------------

    def on_foreign(self, tid: int, status: int) -> bool:
        """A stop of a thread the engine does not know: ours if we seized it. Takes the
        process over (or lets it go: filtered, or its exec failed)."""
        pending = self.pending.get(tid)
        if pending is None:
            return False
        self.pending.pop(pending.tid, None)
        self.pending.pop(pending.tgid, None)
        if not os.WIFSTOPPED(status):
            return True  # died before its first stop
        sig = (status >> 8) & 0xFF
        event = status >> 16
        try:
            self._first_stop(pending, tid, sig, event)
        except (UprobeError, ProcessLookupError, pt.PtraceFailed) as exc:
            self._failed(pending.tgid, exc)
            self._forget(pending.tgid)
        return True

    def _first_stop(self, pending: Pending, tid: int, sig: int, event: int) -> None:
        engine = self.engine
        if pending.kind == "exec" and event != pt.EVENT_EXEC:
            # The exec failed after opening the file: the old program runs on.
            pt.detach(tid, sig if event == 0 else 0)
            return
        if self.closed or not self.wanted(procfs.comm(tid, tid)):
            self.counts.filtered += 1
            self._let_go(pending, tid, sig, event)
            return
        # A signal that came before our stop is delivered (a plain one stop: event 0).
        signals = [sig] if event == 0 and not (pending.kind == "interp" and sig == SIGSTOP) \
            else []
        if pending.kind == "open":
            adopt_stopped(engine, pending.tgid, tid, signals)
        else:
            # exec and interp: a fresh image, stopped before its first instruction.
            if pending.kind == "interp" and event == pt.EVENT_STOP and sig == SIGSTOP:
                # Our SIGSTOP was taken before the seize and stopped the group: continue it.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pending.tgid, signal.SIGCONT)
            # Our SIGSTOP not taken yet (the seize came in before the exec ended, or
            # another signal was first): swallow it when it comes.
            taken = sig == SIGSTOP and event in (0, pt.EVENT_STOP)
            engine.adopt_exec(tid, signals, drop_sigstop=pending.kind == "interp" and not taken)
        self.counts.adopted += 1

    def _let_go(self, pending: Pending, tid: int, sig: int, event: int) -> None:
        """Detach a seized thread that is not to be traced, swallowing our own SIGSTOP."""
        deliver = sig if event == 0 and not (pending.kind == "interp" and sig == SIGSTOP) else 0
        if pending.kind == "interp" and sig != SIGSTOP:
            _undo_stop(pending.tgid, tid)
        pt.detach(tid, deliver)

    def _forget(self, pid: int) -> None:
        proc = self.engine.procs.get(pid)
        if proc is not None:
            with contextlib.suppress(UprobeError, OSError):
                release_process(self.engine, proc)

    # -- end ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop watching: the listener ends, the group closes (the kernel allows whatever
        is still unanswered), queued requests are answered, and threads seized but not
        taken over yet are let go."""
        if self.closed:
            return
        self.closed = True
        if self.listener is not None:
            self.listener.stop()
        with contextlib.suppress(Exception):
            self.drain()
        if self.group is not None:
            self.group.close()
        for pending in list({id(p): p for p in self.pending.values()}.values()):
            with contextlib.suppress(UprobeError, OSError):
                pt.interrupt(pending.tid)
        # Their stops come through on_foreign, which lets them go now that we are closed.
        with contextlib.suppress(UprobeError, OSError):
            self.engine.run(lambda: not self.pending)


def attach_running(engine: Engine, pid: int) -> Process:
    """Seize a running process (no thread stopped for long), then place every probe of
    the registry in it. On failure nothing of it stays traced."""
    pt.seize(pid, TRACE_OPTIONS)
    proc = engine.add_process(pid, spawned=False)
    proc.root = True
    engine.add_thread(proc, pid)
    _take_over(engine, proc)
    return proc


def adopt_stopped(engine: Engine, pid: int, tid: int, signals: list[int]) -> Process:
    """A running process of which thread `tid` is seized and stopped (it opened a probed
    library): seize its other threads, watch the dynamic linker, place the probes its
    mappings already allow, and let it go; `signals` are delivered then."""
    proc = engine.add_process(pid, spawned=False)
    proc.root = True
    th = engine.add_thread(proc, tid)
    th.stopped = True
    th.pending += signals
    _take_over(engine, proc)
    engine.resume(th)
    return proc


def _take_over(engine: Engine, proc: Process) -> None:
    try:
        seize_all_threads(engine, proc)
        # Before any breakpoint of ours can be hit (see runtime/trapguard.py).
        engine.guard_traps(proc)
        engine.installer.watch_mappings(proc)
        engine.installer.install_all(proc)
    except BaseException:
        with contextlib.suppress(Exception):
            release_process(engine, proc)
        raise


def _undo_stop(tgid: int, tid: int) -> None:
    """Cancel the SIGSTOP we queued: SIGCONT discards a pending stop signal (and ends a
    stop it may already have caused)."""
    with contextlib.suppress(OSError):
        tgkill(tgid, tid, signal.SIGCONT)


def _maps_contain(pid: int, idents: set[tuple[int, int]], needles: set[str]) -> bool:
    try:
        text = procfs.maps_text(pid)
    except UprobeError:
        return False
    # Most processes map none of the files: a substring test spares parsing their lines.
    if not any(n in text for n in needles):
        return False
    return any((m.dev, m.inode) in idents
               for m in map(parse_maps_line, text.splitlines()) if m.inode)


__all__ = ["SystemWide", "WatchedFile", "is_program", "watched_file"]

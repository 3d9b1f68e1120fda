"""Waking the tracer out of its blocking waitpid, for timers and stop().

The tracer blocks in waitpid(-1, __WALL|__WNOTHREAD), the cheapest wait per hit, and only
a child's state change ends that wait. So a tiny helper child, forked from the tracer
thread, stops itself (SIGSTOP) whenever a byte arrives on its pipe: writing that byte
(async-signal-safe, thread-safe) is the wakeup. __WNOTHREAD keeps the tracer from reaping
children that other threads of this process start (e.g. system() on the effect thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Waker:
    """The helper child; `pid` shows up in the tracer's waitpid as stopped when woken."""

    def __init__(self) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the helper child
            try:
                # Out of the terminal's process group: Ctrl-C meant for the tracer and its
                # target must not kill the helper (stop() would then never wake the loop).
                os.setpgid(0, 0)
                # Named apart from the tracer in ps/top (PR_SET_NAME).
                ctypes.CDLL(None).prctl(15, b"uprobe-waker", 0, 0, 0)
                signal.pthread_sigmask(
                    signal.SIG_BLOCK,
                    {signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP},
                )
                os.close(w)
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, r)
                os.closerange(r + 1, 1 << 16)
                while os.read(r, 64):
                    os.kill(os.getpid(), signal.SIGSTOP)
            finally:
                os._exit(0)
        os.close(r)
        os.set_blocking(w, False)
        self.pid = pid
        self._w = w

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"w")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._w)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


@dataclass(eq=False)
class Timer:
    period_ns: int
    callback: Callable[[], None]
    deadline: int


class TimerClock:
    """Keeps the timers and a thread that wakes the tracer at each deadline; the tracer
    itself runs the callbacks (`run_due`), so they may use the session freely."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._timers: list[Timer] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, period_ns: int, callback: Callable[[], None]) -> Timer:
        t = Timer(period_ns, callback, time.monotonic_ns() + period_ns)
        with self._cond:
            self._timers.append(t)
            self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="uprobe-timers", daemon=True)
            self._thread.start()
        return t

    def remove(self, timer: Timer) -> None:
        """Stop calling `timer`; a removed timer never fires again, even one already due."""
        with self._cond:
            if timer in self._timers:
                self._timers.remove(timer)
            self._cond.notify()

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic_ns()
                nxt = min((t.deadline for t in self._timers), default=None)
                if nxt is not None and nxt <= now:
                    self._wake()
                    # Wait for the tracer to run it (it moves the deadline) before re-waking.
                    self._cond.wait(0.05)
                    continue
                self._cond.wait(None if nxt is None else (nxt - now) / 1e9)

    def run_due(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Run the callbacks whose deadline passed, unless `stopped()` says the run ends."""
        if stopped():
            return
        now = time.monotonic_ns()
        with self._cond:
            due = [t for t in self._timers if t.deadline <= now]
            for t in due:
                # Catch up without bursts: the next deadline is in the future.
                missed = (now - t.deadline) // t.period_ns + 1
                t.deadline += missed * t.period_ns
            self._cond.notify()
        for t in due:
            if stopped():
                return
            # A callback before it may have removed it (a REPL edit run by a tick).
            if t in self._timers:
                t.callback()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

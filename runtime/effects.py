"""The session's single effect thread: deferred handler work, in hit order.

The effect thread never touches ptrace (only the tracer thread may); it runs the slow parts
of handlers (printing, system(), sleeping) while the target already runs again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class EffectRunner:
    """FIFO of callables run by one daemon thread; `drain` waits until everything queued
    before it has run. The first exception raised by a deferred callable is kept in
    `error` (later ones are dropped) so the session can re-raise it after detaching."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        if self._thread is None:
            self._start()
        self._queue.put(fn)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="uprobe-effects", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - kept and re-raised by the session
                if self.error is None:
                    self.error = e

    def drain(self) -> None:
        """Block until every callable submitted so far has run."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done.set)
        done.wait()

    def close(self) -> None:
        """Drain, then end the thread."""
        if self._thread is None:
            return
        self.drain()
        self._queue.put(None)
        self._thread.join()
        self._thread = None

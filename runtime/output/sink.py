"""The output sink: whole events written at once to a file, text or JSON lines.

Why one write per event: deferred handler effects of several threads, timers and the
final map dump share the output, and a line must never be split by another event. Each
event is rendered to one string first and written under the sink's lock, then flushed.
Text that carries raw target bytes (surrogate escapes) is written back as those bytes
when the file has a binary layer (sys.stdout, files opened in text mode) or is binary.
"""

from __future__ import annotations

import io
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import IO

from runtime.maps import BpfMap, MapStore


def attached_text(num_probes: int) -> str:
    """bpftrace's line once probes are in place ("Attached 1 probe", no trailing dots)."""
    return f"Attached {num_probes} probe{'' if num_probes == 1 else 's'}\n"


def lost_text(lost: int) -> str:
    return f"Lost {lost} events\n"


class Output(ABC):
    """Base of TextOutput and JsonOutput.

    out: where events go; diag: where attached/lost/error lines go in text mode (the CLI
    passes stderr; defaults to `out`). JSON mode writes everything to `out`.
    """

    def __init__(self, out: IO, diag: IO | None = None) -> None:
        self.out = out
        self.diag = diag if diag is not None else out
        self._lock = threading.Lock()
        # Called once when the reader of `out` went away (EPIPE): the run stops, detaches
        # and exits, as bpftrace does; what would have been written is dropped.
        self.on_broken_pipe: Callable[[], None] = lambda: None
        self.broken = False

    # ---- the events

    @abstractmethod
    def printf(self, text: str) -> None:
        """Formatted printf() text, written as is (it carries its own newlines)."""

    @abstractmethod
    def message(self, kind: str, text: str) -> None:
        """Other text events: kind 'time', 'cat', 'join', 'syscall'."""

    @abstractmethod
    def value(self, value: object) -> None:
        """print(value) of a non-map value."""

    @abstractmethod
    def map(self, m: BpfMap, top: int = 0, div: int = 0) -> None:
        """print(@m[, top[, div]])."""

    @abstractmethod
    def maps_at_exit(self, store: MapStore) -> None:
        """The final dump: every non-empty map, by name."""

    @abstractmethod
    def attached_probes(self, num_probes: int) -> None: ...

    @abstractmethod
    def lost_events(self, lost: int) -> None: ...

    @abstractmethod
    def error(self, message: str) -> None:
        """A runtime error that does not stop the session (one line)."""

    @abstractmethod
    def warning(self, message: str) -> None: ...

    # ---- writing

    def write(self, text: str, diag: bool = False) -> None:
        """Write one whole event."""
        if not text:
            return
        f = self.diag if diag else self.out
        with self._lock:
            if self.broken and f is self.out:
                return
            try:
                _write_exact(f, text)
            except BrokenPipeError:
                if f is not self.out:
                    raise
                self.broken = True
                _silence(f)
                self.on_broken_pipe()


def _silence(f: IO) -> None:
    """Point the broken stream's descriptor at /dev/null, so that no later flush (at
    interpreter exit too) fails again."""
    try:
        fd = f.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def _write_exact(f: IO, text: str) -> None:
    if isinstance(f, io.TextIOWrapper):
        f.flush()  # anything written through the text layer must come out first
        f.buffer.write(text.encode("utf-8", "surrogateescape"))
        f.buffer.flush()
    elif isinstance(f, io.RawIOBase | io.BufferedIOBase):
        f.write(text.encode("utf-8", "surrogateescape"))
        f.flush()
    else:
        if not isinstance(f, io.StringIO):
            # A text stream we cannot bypass: raw bytes become U+FFFD rather than an error.
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        f.write(text)
        f.flush()

"""A trace file for Perfetto UI and chrome://tracing (`--trace FILE`), in the Chrome JSON
trace event format (the "Trace Event Format" document): one object with a `traceEvents`
list, timestamps in microseconds.

- A function probed at entry and at return becomes slices: `B` at the entry hit and `E`
  at the return hit, on the hit thread (pid/tid of the target), so nested calls nest.
- Any other probe hit is an instant event (`i`, thread scope) named after the probe.
- printf() output is an instant event named by its text, at the time of the hit that
  printed it (not when the text was formatted).
- Maps of counts, sums and integers are counter tracks (`C`), sampled periodically
  during the run and once at the end: one track per map, one series per key.
- Thread and process names come as metadata events (`M`).

Events are kept in memory and the file is written once, at the end.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from runtime.maps import BpfMap, MapStore
from runtime.output.valuetext import key_text

COUNTER_KINDS = ("count", "sum", "int", "min", "max")
MAX_SERIES = 32  # keys per counter track: more would make the track unreadable


@dataclass
class ChromeTrace:
    """The events of one run; `origin_ns` is the monotonic time of ts 0."""

    path: str
    origin_ns: int
    events: list[dict[str, Any]] = field(default_factory=list)
    names: dict[tuple[int, int], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The hit whose deferred effects run now on the effect thread (set in hit order).
    current: tuple[int, int, int] | None = None

    def _ts(self, ns: int) -> float:
        return max(0, ns - self.origin_ns) / 1000.0

    def _add(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def thread(self, pid: int, tid: int, comm: str) -> None:
        if (pid, tid) not in self.names:
            self.names[(pid, tid)] = comm

    def begin(self, name: str, pid: int, tid: int, ns: int, cat: str = "uprobe") -> None:
        self._add({"name": name, "cat": cat, "ph": "B", "ts": self._ts(ns), "pid": pid,
                   "tid": tid})

    def end(self, name: str, pid: int, tid: int, ns: int, cat: str = "uretprobe") -> None:
        self._add({"name": name, "cat": cat, "ph": "E", "ts": self._ts(ns), "pid": pid,
                   "tid": tid})

    def instant(self, name: str, pid: int, tid: int, ns: int, cat: str,
                args: dict[str, Any] | None = None) -> None:
        event: dict[str, Any] = {"name": name, "cat": cat, "ph": "i", "s": "t",
                                 "ts": self._ts(ns), "pid": pid, "tid": tid}
        if args:
            event["args"] = args
        self._add(event)

    def printf(self, text: str) -> None:
        """printf output, attributed to the hit whose effects are running."""
        hit = self.current
        if hit is None or not text.strip():
            return
        pid, tid, ns = hit
        self.instant(text.rstrip("\n"), pid, tid, ns, "printf", {"text": text})

    def counters(self, store: MapStore, ns: int, pid: int) -> None:
        for m in store.maps():
            if m.kind in COUNTER_KINDS and m.entries:
                series = _series(m)
                if series:
                    self._add({"name": m.display_name, "cat": "map", "ph": "C",
                               "ts": self._ts(ns), "pid": pid, "args": series})

    def write(self) -> None:
        meta: list[dict[str, Any]] = []
        for pid in sorted({p for p, _ in self.names}):
            comm = self.names.get((pid, pid)) or next(
                c for (p, _), c in self.names.items() if p == pid)
            meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": pid,
                         "args": {"name": comm}})
        for (pid, tid), comm in sorted(self.names.items()):
            meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                         "args": {"name": comm}})
        with self._lock:
            events = sorted(self.events, key=lambda e: e["ts"])
        doc = {"traceEvents": meta + events, "displayTimeUnit": "ns",
               "otherData": {"producer": "uprobe"}}
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))


def _series(m: BpfMap) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in m.snapshot()[:MAX_SERIES]:
        v = value.read() if hasattr(value, "read") else value
        if isinstance(v, int):
            out[key_text(key) or "value"] = v
    return out

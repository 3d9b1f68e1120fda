"""JSON lines output (`-f json`), one object per event, shaped as bpftrace's JsonOutput.

    {"type": "attached_probes", "data": {"probes": 2}}
    {"type": "printf", "data": "hello\\n"}
    {"type": "value", "data": [1,"abc"]}                       print((1, "abc"))
    {"type": "value", "data": {"m": 2, "a": [1,2]}}             a struct with an array
    {"type": "map", "data": {"@x": 5}}                         scalar map
    {"type": "map", "data": {"@x": {"bash,2": 5, "sh,1": 7}}}  keys joined with ","
    {"type": "stats", "data": {"@s": {"count": 3, "average": 2, "total": 6}}}
    {"type": "stats", "data": {"@a": {"k": 2}}}                avg maps are "stats" too
    {"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 0, "max": 0,
        "count": 0}, {"min": 2, "max": 3, "count": 2}]}}      keyed: {"@h": {"k": [...]}}
    {"type": "lost_events", "data": {"events": 3}}
    {"type": "error", "data": "..."} / {"type": "warning", "data": "..."}   (ours)
    {"type": "time", "data": "12:00:00\\n"}  (also "cat", "join", "syscall")

Empty maps print nothing. Strings are escaped as bpftrace does (quote, backslash, \\n, \\r,
\\t, other control characters as \\u00XX); other characters are written as they are.
"""

from __future__ import annotations

from typing import IO

from runtime.aggregations import AvgState, CountState, HistState, LhistState, StatsState
from runtime.cint import c_div, wrap_u64
from runtime.maps import BpfMap, MapStore
from runtime.output.hist import hist_json, lhist_json
from runtime.output.mapview import ordered_entries
from runtime.output.sink import Output
from runtime.output.values import CArray, Record
from runtime.output.valuetext import is_quoted, key_item_text, value_text


def json_escape(text: str) -> str:
    out: list[str] = []
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def json_string(text: str) -> str:
    return '"' + json_escape(text) + '"'


def value_json(value: object) -> str:
    """A value as bpftrace writes it in JSON: numbers bare, strings quoted, tuples as
    arrays without spaces."""
    if isinstance(value, tuple):
        return "[" + ",".join(value_json(v) for v in value) + "]"
    if isinstance(value, CArray):
        return "[" + ",".join(value_json(v) for v in value.items) + "]"
    if isinstance(value, Record):
        return "{" + ", ".join(f"{json_string(n)}: {value_json(v)}" for n, v in value.fields) + "}"
    if isinstance(value, int):
        # A pointer too: JSON numbers have no hex form, and the line must stay valid JSON.
        return str(int(value))
    if is_quoted(value):
        return json_string(value_text(value))
    return value_text(value)


def _scaled_json(m: BpfMap, value: object, div: int) -> str:
    v = value.read() if hasattr(value, "read") else value
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        is_count = m.kind == "count" or isinstance(value, CountState)
        return str(wrap_u64(v) // div if is_count else c_div(v, div))
    return value_json(v)


def _has_keys(m: BpfMap) -> bool:
    if m.key_arity is not None:
        return m.key_arity > 0
    return any(len(k) > 0 for k in m.entries)


def map_json(m: BpfMap, top: int = 0, div: int = 0) -> str:
    """One JSON line for print(@m, top, div); "" for an empty map."""
    if not m.entries:
        return ""
    div = div or 1
    entries = ordered_entries(m, top)
    if m.kind in ("hist", "lhist"):
        kind = "hist"
    elif m.kind in ("avg", "stats"):
        kind = "stats"
    else:
        kind = "map"
    elems = []
    for key, value in entries:
        if isinstance(value, HistState):
            text = hist_json(value.buckets, div, value.bits)
        elif isinstance(value, LhistState):
            text = lhist_json(value.buckets, value.min, value.max, value.step)
        elif isinstance(value, StatsState):
            text = (
                f'{{"count": {value.count}, "average": {c_div(value.average, div)}, '
                f'"total": {value.total}}}'
            )
        elif isinstance(value, AvgState):
            text = str(c_div(value.average, div))
        else:
            text = _scaled_json(m, value, div)
        if key:
            text = json_string(",".join(key_item_text(k) for k in key)) + ": " + text
        elems.append(text)
    body = ", ".join(elems)
    if _has_keys(m):
        body = "{" + body + "}"
    return f'{{"type": "{kind}", "data": {{{json_string(m.display_name)}: {body}}}}}\n'


def event_json(kind: str, data: str) -> str:
    """A line `{"type": kind, "data": data}`; `data` is already JSON."""
    return f'{{"type": "{kind}", "data": {data}}}\n'


class JsonOutput(Output):
    """JSON lines; every event, including attached/lost/errors, goes to `out`."""

    def __init__(self, out: IO, diag: IO | None = None) -> None:
        super().__init__(out, out)

    def printf(self, text: str) -> None:
        self.write(event_json("printf", json_string(text)))

    def message(self, kind: str, text: str) -> None:
        self.write(event_json(kind, json_string(text)))

    def value(self, value: object) -> None:
        self.write(event_json("value", value_json(value)))

    def map(self, m: BpfMap, top: int = 0, div: int = 0) -> None:
        self.write(map_json(m, top, div))

    def maps_at_exit(self, store: MapStore) -> None:
        self.write("".join(map_json(m) for m in store.maps()))

    def attached_probes(self, num_probes: int) -> None:
        self.write(event_json("attached_probes", f'{{"probes": {num_probes}}}'))

    def lost_events(self, lost: int) -> None:
        self.write(event_json("lost_events", f'{{"events": {lost}}}'))

    def error(self, message: str) -> None:
        self.write(event_json("error", json_string(message)))

    def warning(self, message: str) -> None:
        self.write(event_json("warning", json_string(message)))

"""bpftrace-compatible text output (bpftrace 0.17's TextOutput).

Map blocks, exactly:
- plain values (count, sum, min, max, int, str, tuple, ...): one `@name[key]: value` line
  per entry, no blank line after the block; ustack values carry their own newlines and
  get no separator;
- avg/stats: the same lines, then one blank line; stats print as a record,
  `@: { .count = 3, .average = 2, .total = 6 }`, as current bpftrace and the project's output
  contract spell it (0.17 wrote `count 3, average 2, total 6`);
- hist/lhist: per entry `@name[key]: ` (0.17 keeps the space before the newline), then
  the rows, entries separated by a blank line and one blank line after the last.
Before the final dump bpftrace prints two newlines ("\\n\\n"); maps_at_exit does too.

Where we knowingly differ from 0.17: `top` applies to stats maps as well as avg maps
(0.17 ignores it for stats), print()'s `div` also divides the stats average (as later
bpftrace versions do), and usym values are separated by newlines (0.17 runs them
together on one line). The final dump skips empty maps (bpftrace prints a bare newline
for each), as the project's output contract asks.
"""

from __future__ import annotations

from typing import IO

from runtime.aggregations import AvgState, HistState, LhistState, StatsState
from runtime.cint import c_div, wrap_u64
from runtime.maps import BpfMap, MapStore
from runtime.output.hist import hist_text, lhist_text
from runtime.output.mapview import ordered_entries
from runtime.output.sink import Output, attached_text, lost_text
from runtime.output.values import Pointer, Stack
from runtime.output.valuetext import key_text, value_text


def _scaled(m: BpfMap, value: object, div: int) -> str:
    v = value.read() if hasattr(value, "read") else value
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int) and not isinstance(v, Pointer):
        return str(wrap_u64(v) // div if m.kind == "count" else c_div(v, div))
    return value_text(v)


def map_text(m: BpfMap, top: int = 0, div: int = 0) -> str:
    """The block print(@m, top, div) writes; an empty map yields its bare terminator."""
    div = div or 1
    entries = ordered_entries(m, top)
    name = m.display_name
    if m.kind in ("hist", "lhist"):
        elems = []
        for key, state in entries:
            if isinstance(state, HistState):
                rows = hist_text(state.buckets, div, state.bits)
            else:
                assert isinstance(state, LhistState)
                rows = lhist_text(state.buckets, state.min, state.max, state.step)
            elems.append(f"{name}{key_text(key)}: \n{rows}")
        return "\n".join(elems) + "\n"
    if m.kind in ("avg", "stats"):
        elems = []
        for key, state in entries:
            assert isinstance(state, AvgState)
            if isinstance(state, StatsState):
                text = (
                    f"{{ .count = {state.count}, .average = {c_div(state.average, div)}, "
                    f".total = {state.total} }}"
                )
            else:
                text = str(c_div(state.average, div))
            elems.append(f"{name}{key_text(key)}: {text}")
        return "\n".join(elems) + "\n\n"
    elems = [f"{name}{key_text(key)}: {_scaled(m, v, div)}" for key, v in entries]
    # Stack text ends with a newline already; bpftrace adds no separator after it.
    delim = "" if entries and isinstance(entries[0][1], Stack) else "\n"
    return delim.join(elems) + "\n"


def value_line(value: object) -> str:
    """print(value) for a non-map value: its text and a newline."""
    return value_text(value) + "\n"


class TextOutput(Output):
    """Human-readable output, byte-compatible with bpftrace where the two overlap."""

    def __init__(self, out: IO, diag: IO | None = None) -> None:
        super().__init__(out, diag)

    def printf(self, text: str) -> None:
        self.write(text)

    def message(self, kind: str, text: str) -> None:
        self.write(text)

    def value(self, value: object) -> None:
        self.write(value_line(value))

    def map(self, m: BpfMap, top: int = 0, div: int = 0) -> None:
        self.write(map_text(m, top, div))

    def maps_at_exit(self, store: MapStore) -> None:
        text = "\n\n" + "".join(map_text(m) for m in store.maps() if m.entries)
        self.write(text)

    def attached_probes(self, num_probes: int) -> None:
        self.write(attached_text(num_probes), diag=True)

    def lost_events(self, lost: int) -> None:
        self.write(lost_text(lost), diag=True)

    def error(self, message: str) -> None:
        self.write(f"ERROR: {message}\n", diag=True)

    def warning(self, message: str) -> None:
        self.write(f"WARNING: {message}\n", diag=True)

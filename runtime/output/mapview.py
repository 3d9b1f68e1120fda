"""Which entries of a map print, in which order: bpftrace's print_map sort and `top`.

bpftrace sorts count/sum/plain-integer maps by value, min/max maps by value, avg/stats
maps by average, hist/lhist maps by the total of their buckets, and every other map by
key (integers as uint64, strings bytewise, first key element first). Ties keep key order
here (bpftrace leaves them in hash order). print(@m, top) keeps the last `top` entries of
that order, i.e. the largest.
"""

from __future__ import annotations

from runtime.aggregations import AvgState, HistState, LhistState
from runtime.cint import wrap_u64
from runtime.maps import BpfMap, Key, key_sort_key

VALUE_SORTED = frozenset({"count", "sum", "int", "min", "max"})


def _sort_value(kind: str, value: object) -> int:
    if isinstance(value, AvgState):  # avg and stats
        return value.average
    if isinstance(value, HistState | LhistState):
        return value.total
    v = value.read() if hasattr(value, "read") else value
    if not isinstance(v, int):
        return 0
    return wrap_u64(v) if kind == "count" else v


def ordered_entries(m: BpfMap, top: int = 0) -> list[tuple[Key, object]]:
    """The map's (key, value-or-state) pairs in print order, trimmed to `top` if given."""
    entries = sorted(m.snapshot(), key=lambda kv: key_sort_key(kv[0]))
    if m.kind in VALUE_SORTED or m.kind in ("avg", "stats", "hist", "lhist"):
        entries.sort(key=lambda kv: _sort_value(m.kind, kv[1]))
    if top and len(entries) > top:
        entries = entries[len(entries) - top:]
    return entries

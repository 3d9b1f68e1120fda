"""The shared-memory layout: one area mapped in the tracer and in the target.

Every offset is a compile-time constant of one program (it depends on the plan only), so
the compiled code bakes offsets in and takes the area's base as an argument. All words are
little-endian u64 unless noted. The header's hot words sit on cache lines of their own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from runtime.aggregations import hist_bucket_count, lhist_bucket_count

MAGIC = 0x3130504D554A5055  # "UPJUMP01"
VERSION = 1
PAGE = 4096
LINE = 64

# Header words (byte offsets).
H_MAGIC = 0
H_VERSION = 8
H_SIZE = 16
H_FLAGS = 24  # bit 0: drop events when the ring is full instead of waiting
H_TRACER_PID = 32
H_TRACER_GONE = 40  # non-zero: nobody drains any more; writers never wait
H_CLOCK_MULT = 48  # nsecs = base_ns + ((tsc - base_tsc) * mult >> shift)
H_CLOCK_SHIFT = 56
H_CLOCK_BASE_TSC = 64
H_CLOCK_BASE_NS = 72
H_NEXT_ORDINAL = 80  # threads get ordinals 0, 1, ... in order of their first hit
H_SHADOW_MISS = 88  # return probes not armed: shadow stack full
H_RET_MISS = 96  # return trampoline reached with no entry for the frame
H_THREAD_FULL = 104  # hits that found no free per-thread entry
H_STR_FAULTS = 112  # str()/buf() reads that faulted (the event still goes out, empty)
H_START_NS = 120  # the session's start, for `elapsed`
H_RING_HEAD = 128  # next record to reserve (lock xadd)
H_RING_TAIL = 192  # next record the tracer will consume (written by the tracer only)
H_FUTEX = 256  # u32: bumped by the tracer after it freed space; writers wait on it
H_WAITERS = 264  # writers currently waiting on the futex
H_LOST = 320  # events dropped (drop mode, or the tracer is gone)
H_STOPPED = 384  # non-zero after exit(): no clause runs any more (as the trap path stops)
HEADER_SIZE = PAGE

FLAG_DROP = 1

MAX_SITES = 4096
SITE_SIZE = 16  # entry clause mask, return clause mask
SITES_OFF = HEADER_SIZE
MAX_CLAUSES = 64  # one bit per in-target clause in a site's masks

MAX_THREADS = 1024
SHADOW_DEPTH = 64
SHADOW_ENTRY = 24  # original return address, stack slot address, site id
# Thread entry: fs_base, tid, pid, ordinal, shadow depth; then self-> slots; then shadow.
T_FS_BASE = 0
T_TID = 8
T_PID = 16
T_ORDINAL = 24
NO_ORDINAL = (1 << 64) - 1  # bound by the tracer; the thread takes one at its first hit
T_DEPTH = 32
T_TL = LINE

SHARDS = 16  # aggregation values are kept per thread ordinal modulo SHARDS

# Map region header; then the slots.
M_DROPS = 0  # new keys not stored: max_map_keys reached or the table full
M_KEYS = 8  # keys stored (against max_map_keys)
MAP_HEADER = LINE
# Slot: state word (0 empty, 1 being claimed, 2 ready), the key words, then values.
S_STATE = 0
SLOT_EMPTY, SLOT_BUSY, SLOT_READY = 0, 1, 2

# Event record: commit word (ring position + 1 once written), event id (u32), tid (u32),
# nsecs, pid; then the captured values.
R_COMMIT = 0
R_EVENT = 8
R_TID = 12
R_NSECS = 16
R_PID = 24
R_CAPS = 32

DEFAULT_RING_RECORDS = 1 << 16
DEFAULT_MAP_SLOTS = 1 << 13  # max_map_keys 4096 at load factor 1/2
HIST_MAP_SLOTS = 1 << 10  # hist/lhist maps hold SHARDS x buckets words per key


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class MapLayout:
    """One map in the shared area: an open-addressing table keyed by integer tuples
    (`arity` key words; a `comm` key takes two).

    kind: count, sum, min, max, avg, stats, hist, lhist (SHARDS copies of `words` value
    words per slot) or int (present, value, write sequence; no shards)."""

    name: str
    index: int
    kind: str
    arity: int
    offset: int
    slots: int
    words: int  # value words per shard (aggregations) or 3 (int)
    hist_bits: int = 0
    lhist_args: tuple[int, int, int] | None = None
    max_keys: int = 0  # 0: as many as the table holds
    key_kinds: tuple[str, ...] = ()  # per key: 'int' (one word) or 'comm' (two words)

    @property
    def sharded(self) -> bool:
        return self.kind != "int"

    @property
    def stride(self) -> int:
        """Words from one shard to the next. A scalar map's shards get a cache line each:
        every thread hits the same slot, and shards on one line would bounce it between
        CPUs (a keyed map's threads mostly hit different slots; it stays dense)."""
        if self.arity == 0 and self.sharded:
            return _align(self.words, LINE // 8)
        return self.words

    @property
    def slot_size(self) -> int:
        values = self.stride * (SHARDS if self.sharded else 1)
        return self.values_off + 8 * values

    @property
    def size(self) -> int:
        return MAP_HEADER + self.slots * self.slot_size

    @property
    def values_off(self) -> int:
        """Byte offset of the value words inside a slot."""
        if self.arity == 0 and self.sharded:
            return LINE  # the state and key words own the first line
        return 8 * (1 + max(self.arity, 1))


def value_words(kind: str, hist_bits: int = 0,
                lhist_args: tuple[int, int, int] | None = None) -> int:
    if kind in ("count", "sum"):
        return 1
    if kind in ("min", "max", "avg", "stats"):
        return 2  # min/max: seen, encoded value; avg/stats: count, total
    if kind == "hist":
        return hist_bucket_count(hist_bits)
    if kind == "lhist":
        assert lhist_args is not None
        return lhist_bucket_count(*lhist_args) + 2
    if kind == "int":
        return 3  # present, value, write sequence
    raise ValueError(kind)


@dataclass(frozen=True)
class EventLayout:
    """One kind of event record: which clause's user-side part it feeds, and the captures.

    caps: ('int', 8), ('str', n) or ('buf', n) per captured value, at offsets
    `cap_offsets` (see cap_bytes)."""

    id: int
    clause: int
    caps: tuple[tuple[str, int], ...]

    @property
    def cap_offsets(self) -> tuple[int, ...]:
        out, off = [], R_CAPS
        for kind, size in self.caps:
            out.append(off)
            off += cap_bytes(kind, size)
        return tuple(out)

    @property
    def size(self) -> int:
        return R_CAPS + sum(cap_bytes(k, n) for k, n in self.caps)


def cap_bytes(kind: str, size: int) -> int:
    """Record bytes of one capture: an int; a string's fault word (the address that could
    not be read, 0 when fine) and its bytes; a buffer's status word (0 read, 1 not), its
    address and its bytes."""
    if kind == "int":
        return 8
    return (16 if kind == "buf" else 8) + _align(size, 8)


@dataclass
class Layout:
    """The whole area of one program: header, sites, threads, maps, ring."""

    tl_names: list[str] = field(default_factory=list)
    maps: dict[str, MapLayout] = field(default_factory=dict)
    events: list[EventLayout] = field(default_factory=list)
    ring_records: int = DEFAULT_RING_RECORDS
    threads_off: int = 0
    ring_off: int = 0
    record_size: int = LINE
    size: int = 0

    @property
    def thread_size(self) -> int:
        return _align(T_TL + 8 * len(self.tl_names) + SHADOW_DEPTH * SHADOW_ENTRY, LINE)

    @property
    def shadow_off(self) -> int:
        """Byte offset of the shadow stack inside a thread entry."""
        return T_TL + 8 * len(self.tl_names)

    def add_map(self, name: str, kind: str, key_kinds: tuple[str, ...], hist_bits: int = 0,
                lhist_args: tuple[int, int, int] | None = None,
                max_keys: int = 0) -> MapLayout:
        key_kinds = tuple("comm" if k == "comm" else "int" for k in key_kinds)
        arity = sum(2 if k == "comm" else 1 for k in key_kinds)  # key words
        if arity == 0:
            slots = 1
        else:
            slots = HIST_MAP_SLOTS if kind in ("hist", "lhist") else DEFAULT_MAP_SLOTS
            if max_keys:
                slots = min(slots, 1 << max(1, (2 * max_keys - 1).bit_length()))
        m = MapLayout(name, len(self.maps), kind, arity, 0, slots,
                      value_words(kind, hist_bits, lhist_args), hist_bits, lhist_args,
                      max_keys if arity and max_keys < slots else 0, key_kinds)
        self.maps[name] = m
        return m

    def tl_offset(self, name: str) -> int:
        if name not in self.tl_names:
            self.tl_names.append(name)
        return T_TL + 8 * self.tl_names.index(name)

    def add_event(self, clause: int, caps: tuple[tuple[str, int], ...]) -> EventLayout:
        ev = EventLayout(len(self.events) + 1, clause, caps)  # 0 is never an event id
        self.events.append(ev)
        return ev

    def finish(self) -> None:
        """Places the regions once every map, event and thread-local is known."""
        off = SITES_OFF + MAX_SITES * SITE_SIZE
        self.threads_off = _align(off, PAGE)
        off = self.threads_off + MAX_THREADS * self.thread_size
        placed: dict[str, MapLayout] = {}
        for name, m in self.maps.items():
            off = _align(off, PAGE)
            placed[name] = dataclasses.replace(m, offset=off)
            off += m.size
        self.maps = placed
        need = max([LINE] + [e.size for e in self.events])
        self.record_size = 1 << (need - 1).bit_length()
        self.ring_off = _align(off, PAGE)
        self.size = _align(self.ring_off + self.ring_records * self.record_size, PAGE)

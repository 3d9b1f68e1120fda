"""The tracer side of the shared area: drain the event ring, merge the maps.

`JumpReader.drain()` runs, in ring order (the global order of the hits), the user-side part
of each event: the clause's effect statement compiled by the trap path's own handler code
generator, with the captured values bound where the target evaluated them. So printf,
print, time, system, cat and string-keyed map updates format and behave exactly as on the
trap path. `merge_maps(store)` folds the shared maps into the executor's MapStore: what
changed since the last merge is added (counts, sums, buckets), combined (min, max) or
assigned (plain integers), so trap-path sites and user-side writes to the same map add up,
and clear()/zero() on the user side only reset what has already been merged.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.aggregations import new_state
from runtime.cint import MASK64, wrap_s64
from runtime.handlers.codegen import ClauseGen, Shared, map_global
from runtime.handlers.ctypes_ import INT64, STR
from runtime.handlers.values import decode_cstr
from runtime.jump import layout as L
from runtime.jump.program import JumpProgram
from runtime.jump.split import CAPTURE_PREFIX
from runtime.maps import MapStore, normalize_key

SYS_FUTEX = 202
FUTEX_WAKE = 1
INT_MAX = 0x7FFFFFFF
SIGN = 1 << 63


class ReplayContext:
    """What the user-side part of a clause sees: the hit's identity from the record.
    Effects run at once (the drain is already after the hit, in hit order)."""

    __slots__ = ("pid", "tid", "nsecs", "probe", "_comm")

    def __init__(self, pid: int, tid: int, nsecs: int) -> None:
        self.pid, self.tid, self.nsecs = pid, tid, nsecs
        self.probe = None
        self._comm: str | None = None

    @property
    def comm(self) -> str:
        if self._comm is None:
            try:
                with open(f"/proc/{self.pid}/task/{self.tid}/comm") as f:
                    self._comm = f.read().rstrip("\n")
            except OSError:
                self._comm = ""
        return self._comm

    @property
    def cpu(self) -> int:
        return -1

    @staticmethod
    def defer(fn: Callable[[], None]) -> None:
        fn()


@dataclass
class UserSide:
    """Python functions, one per event id, built with the trap path's code generator."""

    functions: dict[int, Callable[[Any, tuple], None]]
    prints_maps: frozenset[int]  # event ids whose statement prints a map
    sources: dict[int, str] = field(default_factory=dict)


def compile_user_side(prog: JumpProgram, support: Any,
                      compile_format: Callable[[str], object]) -> UserSide:
    plan = prog.plan
    shared = Shared(layouts={t.name: t for t in plan.types}, maps={m.name: m for m in plan.maps},
                    params=plan.params)
    kinds = {p.id: p.kind for p in plan.probes}
    sources: dict[int, str] = {}
    prints: set[int] = set()
    for eid, ev in prog.program.events.items():
        lay_ev = prog.layout.events[eid - 1]
        clause = plan.clauses[lay_ev.clause]
        kind = kinds.get(clause.probes[0], "uprobe") if clause.probes else "uprobe"
        gen = ClauseGen(shared, kind)
        for i, cap in enumerate(ev.captures):
            gen.var_types[f"{CAPTURE_PREFIX}{i}"] = STR if cap.kind == "str" else INT64
        body: list[str] = []
        gen.block((ev.stmt,), body, 0, in_loop=False)
        lines = [f"def event_{eid}(_ctx, _caps):", "    if _stopped[0]: return"]
        if gen.uses_tl:
            lines.append("    _T = _tls_of(_ctx)")
        lines.append(f"    ({''.join(f'v_{CAPTURE_PREFIX}{i}, ' for i in range(len(ev.captures)))})"
                     " = _caps" if ev.captures else "    pass")
        lines += ["    " + ln for ln in body]
        sources[eid] = "\n".join(lines) + "\n"
        if "_print_map(" in sources[eid]:
            prints.add(eid)
    namespace: dict[str, object] = dict(support.namespace())
    for name, value in shared.consts.items():
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "printf":
            namespace[name] = compile_format(str(value[1]))
        else:
            namespace[name] = value
    for name in shared.map_names:
        namespace[map_global(name)] = support.maps.map(name)
    exec(compile("\n".join(sources.values()), "<uprobe jump user side>", "exec"),  # noqa: S102
         namespace)
    funcs = {eid: namespace[f"event_{eid}"] for eid in sources}
    return UserSide(funcs, frozenset(prints), sources)  # type: ignore[arg-type]


class JumpReader:
    """Reads one process's shared area. `view` is a writable mapping of it."""

    def __init__(self, prog: JumpProgram, view: memoryview | Any, store: MapStore,
                 user: UserSide | None = None) -> None:
        self.prog = prog
        self.view = memoryview(view)
        self.store = store
        self.user = user
        self.lay = prog.layout
        self._last: dict[str, dict[tuple, object]] = {}
        self._addr = ctypes.addressof(ctypes.c_char.from_buffer(view)) \
            if not isinstance(view, memoryview) else None
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall

    # ---- header

    def _u64(self, off: int) -> int:
        return struct.unpack_from("<Q", self.view, off)[0]

    def _put(self, off: int, v: int) -> None:
        struct.pack_into("<Q", self.view, off, v & MASK64)

    @property
    def lost(self) -> int:
        """Events not written: dropped on a full ring (drop mode) or after the tracer went."""
        return self._u64(L.H_LOST)

    @property
    def counters(self) -> dict[str, int]:
        return {
            "lost": self.lost, "shadow_full": self._u64(L.H_SHADOW_MISS),
            "return_without_entry": self._u64(L.H_RET_MISS),
            "thread_table_full": self._u64(L.H_THREAD_FULL),
            "str_faults": self._u64(L.H_STR_FAULTS),
        }

    def release(self) -> None:
        """Lets go of the mapping (the owner can then unmap it)."""
        self.view.release()

    def close(self) -> None:
        """Nobody drains from now on: writers stop waiting (and drop), waiters wake."""
        self._put(L.H_TRACER_GONE, 1)
        self.wake_writers(force=True)

    def wake_writers(self, force: bool = False) -> bool:
        """FUTEX_WAKE writers waiting for space; True when some were waiting."""
        if not force and self._u64(L.H_WAITERS) == 0:
            return False
        fut = struct.unpack_from("<I", self.view, L.H_FUTEX)[0]
        struct.pack_into("<I", self.view, L.H_FUTEX, (fut + 1) & 0xFFFFFFFF)
        if self._addr is not None:
            self._syscall(SYS_FUTEX, ctypes.c_void_p(self._addr + L.H_FUTEX), FUTEX_WAKE,
                          INT_MAX, None, None, 0)
        return True

    # ---- ring

    def pending(self) -> int:
        return self._u64(L.H_RING_HEAD) - self._u64(L.H_RING_TAIL)

    def drain(self, limit: int = 1 << 30) -> int:
        """Runs the user side of every committed record in order; returns how many.
        Stops at the first record not yet committed (its writer is still filling it)."""
        lay, view = self.lay, self.view
        tail = self._u64(L.H_RING_TAIL)
        mask = lay.ring_records - 1
        rs = lay.record_size
        done = 0
        events = lay.events
        funcs = self.user.functions if self.user else {}
        prints = self.user.prints_maps if self.user else frozenset()
        while done < limit:
            off = lay.ring_off + (tail & mask) * rs
            commit, word, nsecs, pid = struct.unpack_from("<QQQQ", view, off)
            if commit != tail + 1:
                break
            eid, tid = word & 0xFFFFFFFF, word >> 32
            ev = events[eid - 1]
            caps = []
            for (kind, size), coff in zip(ev.caps, ev.cap_offsets, strict=True):
                if kind == "int":
                    caps.append(wrap_s64(struct.unpack_from("<Q", view, off + coff)[0]))
                else:
                    caps.append(decode_cstr(bytes(view[off + coff: off + coff + size])))
            tail += 1
            done += 1
            if eid in prints:
                self.merge_maps()
            fn = funcs.get(eid)
            if fn is not None:
                fn(ReplayContext(pid, tid, nsecs), tuple(caps))
            if done & 255 == 0:
                self._put(L.H_RING_TAIL, tail)
                self.wake_writers()
        if done:
            self._put(L.H_RING_TAIL, tail)
            self.wake_writers()
        return done

    # ---- maps

    def read_map(self, name: str) -> dict[tuple, object]:
        """The shared map's raw contents: key -> value (per kind, shards combined)."""
        ml = self.lay.maps[name]
        view = self.view
        out: dict[tuple, object] = {}
        base = ml.offset + L.MAP_HEADER
        nwords = ml.slot_size // 8
        fmt = f"<{nwords}Q"
        ka = max(ml.arity, 1)
        for i in range(ml.slots):
            soff = base + i * ml.slot_size
            if struct.unpack_from("<Q", view, soff)[0] != L.SLOT_READY:
                continue
            w = struct.unpack_from(fmt, view, soff)
            key = tuple(wrap_s64(k) for k in w[1:1 + ml.arity])
            vals = w[1 + ka:]
            out[key] = _combine(ml, vals)
        return out

    def map_drops(self, name: str) -> int:
        return self._u64(self.lay.maps[name].offset + L.M_DROPS)

    def merge_maps(self, store: MapStore | None = None) -> None:
        """Folds every shared map into the MapStore (what changed since the last merge)."""
        store = store or self.store
        for name, ml in self.lay.maps.items():
            last = self._last.setdefault(name, {})
            for key, cur in self.read_map(name).items():
                prev = last.get(key)
                if prev == cur:
                    continue
                last[key] = cur
                _apply(store, ml, key, prev, cur)


def _combine(ml: L.MapLayout, vals: tuple[int, ...]) -> object:
    k, w = ml.kind, ml.words
    if k == "int":
        return (vals[0], wrap_s64(vals[1]), vals[2])  # present, value, sequence
    shards = [vals[s * w:(s + 1) * w] for s in range(L.SHARDS)]
    if k in ("count", "sum"):
        return sum(s[0] for s in shards) & MASK64
    if k in ("avg", "stats"):
        return (sum(s[0] for s in shards) & MASK64, sum(s[1] for s in shards) & MASK64)
    if k in ("min", "max"):
        seen = [s[1] for s in shards if s[0]]
        if not seen:
            return None
        enc = max(seen)
        if k == "min":
            enc ^= MASK64
        return wrap_s64(enc ^ SIGN)
    return tuple(sum(col) & MASK64 for col in zip(*shards, strict=True))  # hist / lhist


def _apply(store: MapStore, ml: L.MapLayout, key: tuple, prev: object, cur: object) -> None:
    name, kind = ml.name, ml.kind
    if kind == "int":
        present, value, _seq = cur  # type: ignore[misc]
        if present:
            store.assign(name, key, value)
        else:
            store.delete(name, key)
        return
    if cur is None:
        return
    with store._lock:
        m = store.map(name)
        m._bind_kind(kind)
        k = normalize_key(key)
        m._check_key(k)
        if kind == "hist" and m.hist_bits is None:
            m.hist_bits = ml.hist_bits
        if kind == "lhist" and m.lhist_args is None:
            m.lhist_args = ml.lhist_args
        state = m.entries.get(k)
        if state is None:
            if store._full(m):
                return
            state = m.entries[k] = new_state(kind, m.lhist_args, m.hist_bits or 0)
        if kind == "count":
            state.count = (state.count + cur - (prev or 0)) & MASK64  # type: ignore[operator]
        elif kind == "sum":
            state.total = wrap_s64(state.total + cur - (prev or 0))  # type: ignore[operator]
        elif kind in ("avg", "stats"):
            pc, pt = prev or (0, 0)  # type: ignore[misc]
            cc, ct = cur  # type: ignore[misc]
            state.count = (state.count + cc - pc) & MASK64
            state.total = wrap_s64(state.total + ct - pt)
        elif kind in ("min", "max"):
            state.add(cur)  # type: ignore[arg-type]
        else:
            before = prev or (0,) * len(cur)  # type: ignore[arg-type]
            for i, (c, p) in enumerate(zip(cur, before, strict=True)):  # type: ignore[call-overload]
                state.buckets[i] = (state.buckets[i] + c - p) & MASK64



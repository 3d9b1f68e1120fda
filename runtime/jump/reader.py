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
from functools import partial
from typing import Any

from runtime.aggregations import new_state
from runtime.cint import MASK64, wrap_s64
from runtime.handlers.codegen import ClauseGen, Shared
from runtime.handlers.compiler import bind_namespace
from runtime.handlers.ctypes_ import BUF, INT64, STR
from runtime.handlers.values import decode_cstr
from runtime.jump import layout as L
from runtime.jump.fastprintf import FastPrintf, compile_fast_printf
from runtime.jump.program import JumpProgram
from runtime.jump.split import CAPTURE_PREFIX, Event
from runtime.maps import MapStore, normalize_key
from runtime.output.text import TextOutput
from runtime.output.timefmt import monotonic_ns_to_epoch_ns, time_text
from runtime.output.values import Buf
from uplang import ast

SYS_FUTEX = 202
FUTEX_WAKE = 1
INT_MAX = 0x7FFFFFFF
CHUNK = 4096  # records read per slice of the ring
CAPS_WORD = L.R_CAPS // 8  # a record's first capture, in words
CAPTURE_TYPES = {"int": INT64, "str": STR, "comm": STR, "buf": BUF}
SIGN = 1 << 63


class ReplayContext:
    """What the user-side part of a clause sees: the hit's identity from the record (every
    other input was captured in the target). Effects run at once: the drain is already
    after the hit, in hit order."""

    __slots__ = ("pid", "tid", "nsecs", "probe")

    def __init__(self, pid: int, tid: int, nsecs: int) -> None:
        self.pid, self.tid, self.nsecs = pid, tid, nsecs
        self.probe = None

    @staticmethod
    def defer(fn: Callable[[], None]) -> None:
        fn()


@dataclass
class UserSide:
    """Python functions, one per event id, built with the trap path's code generator;
    printf events with simple formats also get a direct formatter (runtime.jump.fastprintf)."""

    functions: dict[int, Callable[[Any, tuple], None]]
    prints_maps: frozenset[int]  # event ids whose statement prints a map
    sources: dict[int, str] = field(default_factory=dict)
    fast: dict[int, FastPrintf] = field(default_factory=dict)
    sink: Any = None  # the output sink the fast formatters write to
    stopped: list[bool] = field(default_factory=lambda: [False])

    @property
    def batches(self) -> bool:
        """Text output takes many printf lines in one write; JSON needs one per event."""
        return isinstance(self.sink, TextOutput)


def compile_user_side(prog: JumpProgram, support: Any,
                      compile_format: Callable[[str], object]) -> UserSide:
    plan = prog.plan
    shared = Shared.of(plan)
    kinds = {p.id: p.kind for p in plan.probes}
    sources: dict[int, str] = {}
    prints: set[int] = set()
    fast: dict[int, FastPrintf] = {}
    for eid, ev in prog.program.events.items():
        lay_ev = prog.layout.events[eid - 1]
        clause = plan.clauses[lay_ev.clause]
        kind = kinds.get(clause.probes[0], "uprobe") if clause.probes else "uprobe"
        gen = ClauseGen(shared, kind)
        for i, cap in enumerate(ev.captures):
            gen.var_types[f"{CAPTURE_PREFIX}{i}"] = CAPTURE_TYPES[cap.kind]
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
        direct = _direct_printf(ev, compile_format)
        if direct is not None:
            fast[eid] = direct
    namespace = bind_namespace(shared, support, compile_format)
    emitter = getattr(support, "emitter", None)

    def time_at_hit(ctx: Any, fmt: str) -> None:
        # time() shows when the hit happened, as the trap path does: the record's
        # timestamp (CLOCK_MONOTONIC from the target's TSC) on the wall clock.
        text = time_text(fmt, monotonic_ns_to_epoch_ns(ctx.nsecs))
        ctx.defer(partial(emitter.text, text, "time"))  # type: ignore[union-attr]

    if emitter is not None:
        namespace["_time"] = time_at_hit
    exec(compile("\n".join(sources.values()), "<uprobe jump user side>", "exec"),  # noqa: S102
         namespace)
    funcs: dict[int, Callable[[Any, tuple], None]] = {
        eid: namespace[f"event_{eid}"] for eid in sources  # type: ignore[misc]
    }
    sink = getattr(getattr(support, "emitter", None), "sink", None)
    return UserSide(funcs, frozenset(prints), sources, fast if sink is not None else {}, sink,
                    support.stopped)


def _direct_printf(ev: Event, compile_format: Callable[[str], object]
                   ) -> FastPrintf | None:
    """A formatter for `printf("...", captures in order)`, or None."""
    stmt = ev.stmt
    if not (isinstance(stmt, ast.ExprStmt) and isinstance(stmt.expr, ast.Call)
            and stmt.expr.name == "printf" and stmt.expr.args
            and isinstance(stmt.expr.args[0], ast.Str)):
        return None
    args = stmt.expr.args[1:]
    if [a.name if isinstance(a, ast.Var) else None for a in args] != \
            [f"{CAPTURE_PREFIX}{i}" for i in range(len(ev.captures))]:
        return None
    fmt = compile_format(stmt.expr.args[0].value)
    return compile_fast_printf(fmt, tuple({"comm": "str"}.get(c.kind, c.kind)
                                          for c in ev.captures))


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
        self._drops: dict[str, int] = {}
        self._structs: dict[int, tuple[struct.Struct, tuple[int, ...] | None]] | None = None
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

    def stop_hits(self) -> None:
        """exit() ran on the user side: from now on no clause runs in the target."""
        self._put(L.H_STOPPED, 1)

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

    def _record_structs(self) -> dict[int, tuple[struct.Struct, tuple[int, ...] | None]]:
        """Per event id: the captures' struct (from R_CAPS; a string is its fault word and
        its bytes) and the bounds of its strings (0 for an integer; None when it has no
        strings), built once."""
        out = {}
        for ev in self.lay.events:
            fmt = "<" + "".join("q" if k == "int" else
                                ("QQ" if k == "buf" else "Q") + f"{(n + 7) // 8 * 8}s"
                                for k, n in ev.caps)
            # strings by their bound, buffers as -(bound + 1)
            sizes = tuple(0 if k == "int" else (-n - 1 if k == "buf" else n)
                          for k, n in ev.caps)
            out[ev.id] = (struct.Struct(fmt), sizes if any(sizes) else None)
        return out

    def drain(self, limit: int = 1 << 30) -> int:
        """Runs the user side of every committed record in order; returns how many.
        Stops at the first record not yet committed (its writer is still filling it).
        Records are read a contiguous chunk at a time as one list of words; consecutive
        simple printf lines are written in one piece."""
        lay, view = self.lay, self.view
        tail = self._u64(L.H_RING_TAIL)
        n_rec = lay.ring_records
        rs = lay.record_size
        rw = rs // 8
        base = lay.ring_off
        done = 0
        if self._structs is None:
            self._structs = self._record_structs()
        structs = self._structs
        user = self.user
        fast = user.fast if user else {}
        # Fast events whose captures are all integers format straight from the words.
        int_fast = {e: f for e, f in fast.items() if structs[e][1] is None}
        stopped = user.stopped if user else [False]
        batch = user.batches if user else False
        pending: list[str] = []
        out = pending.append
        while done < limit:
            head = self._u64(L.H_RING_HEAD)
            avail = min(head - tail, limit - done, CHUNK)
            if avail <= 0:
                break
            first = tail % n_rec
            k = min(avail, n_rec - first)  # up to the end of the ring: one slice
            words = view[base + first * rs: base + (first + k) * rs].cast("Q").tolist()
            i = 0
            stop = False
            whole = self._whole_chunk(words, k, rw, tail, int_fast)
            if whole is not None and batch:  # one simple printf event, all committed
                if not stopped[0]:
                    out(whole.many(words, CAPS_WORD, k, rw))
                tail += k
                done += k
                i = k
            while i < k:
                w = i * rw
                if words[w] != tail + 1:
                    stop = True  # not committed yet
                    break
                eid = words[w + 1] & 0xFFFFFFFF
                tail += 1
                done += 1
                i += 1
                fi = int_fast.get(eid)
                if fi is not None:
                    if not stopped[0]:
                        text = fi.one(words[w + CAPS_WORD: w + CAPS_WORD + len(fi.cuts)])
                        if batch:
                            out(text)
                        else:
                            user.sink.printf(text)  # type: ignore[union-attr]
                    continue
                self._one(base + (first + i - 1) * rs, eid, words[w + 1] >> 32,
                          words[w + 2], words[w + 3], pending, batch)
            if pending:
                user.sink.printf("".join(pending))  # type: ignore[union-attr]
                pending.clear()
            self._put(L.H_RING_TAIL, tail)
            # Unconditionally: reading the waiter count right after storing the tail could
            # be reordered before the store (x86 store buffer) and miss a writer that just
            # went to sleep; FUTEX_WAKE after bumping the word cannot.
            self.wake_writers(force=True)
            if stop:
                break
        return done

    def _strings(self, raw: tuple, strs: tuple[int, ...], pending: list[str]) -> tuple:
        """Captured strings decoded; one that could not be read is "" and reported with
        the trap path's message, in order with the output."""
        out: list = []
        it = iter(raw)
        for n in strs:
            if not n:
                out.append(next(it))
                continue
            if n < 0:  # buf(): status, address, bytes
                n = -n - 1
                failed, addr, data = next(it), next(it), next(it)
                if failed:
                    self._error(f"buf(): failed to read {n} bytes at "
                                f"0x{addr & 0xFFFFFFFFFFFFFFFF:x}", pending)
                    out.append(Buf(b""))
                else:
                    out.append(Buf(bytes(data[:n])))
                continue
            fault, data = next(it), next(it)
            if fault:
                self._error(f"str(): failed to read a string at 0x{fault:x}", pending)
                out.append("")
            else:
                out.append(decode_cstr(data[:n]))
        return tuple(out)

    def _error(self, message: str, pending: list[str]) -> None:
        """An error event in order with the output before it."""
        user = self.user
        if user is None:
            return
        if pending:
            user.sink.printf("".join(pending))
            pending.clear()
        user.sink.error(message)

    @staticmethod
    def _whole_chunk(words: list[int], k: int, rw: int, tail: int,
                     int_fast: dict[int, FastPrintf]) -> FastPrintf | None:
        """The formatter when all k records are committed and of one simple event."""
        if words[(k - 1) * rw] != tail + k or words[0] != tail + 1:
            return None
        if words[0: k * rw: rw] != list(range(tail + 1, tail + k + 1)):
            return None
        eids = {w & 0xFFFFFFFF for w in words[1: k * rw: rw]}
        if len(eids) != 1:
            return None
        return int_fast.get(eids.pop())

    def _one(self, off: int, eid: int, tid: int, nsecs: int, pid: int,
             pending: list[str], batch: bool) -> None:
        """One record through its generic path (strings decoded, the statement's code)."""
        user = self.user
        if user is None:
            return
        got = self._structs.get(eid) if self._structs else None
        if got is None:
            return  # not an event of this program: nothing the user side could run
        st, strs = got
        caps: tuple = st.unpack_from(self.view, off + L.R_CAPS)
        if strs is not None:
            caps = self._strings(caps, strs, pending)
        f = user.fast.get(eid)
        if f is not None:
            if not user.stopped[0]:
                if batch:
                    pending.append(f.one(caps))
                else:
                    user.sink.printf(f.one(caps))
            return
        if pending:
            user.sink.printf("".join(pending))
            pending.clear()
        if eid in user.prints_maps:
            self.merge_maps()
        fn = user.functions.get(eid)
        if fn is not None:
            fn(ReplayContext(pid, tid, nsecs), caps)

    # ---- maps

    def read_map(self, name: str) -> dict[tuple, object]:
        """The shared map's raw contents: key -> value (per kind, shards combined)."""
        ml = self.lay.maps[name]
        view = self.view
        out: dict[tuple, object] = {}
        base = ml.offset + L.MAP_HEADER
        nwords = ml.slot_size // 8
        fmt = f"<{nwords}Q"
        vw = ml.values_off // 8
        comm = "comm" in ml.key_kinds
        for i in range(ml.slots):
            soff = base + i * ml.slot_size
            if struct.unpack_from("<Q", view, soff)[0] != L.SLOT_READY:
                continue
            w = struct.unpack_from(fmt, view, soff)
            key = _key(ml, w) if comm else tuple(wrap_s64(k) for k in w[1:1 + ml.arity])
            vals = w[vw:]
            out[key] = _combine(ml, vals)
        return out

    def map_drops(self, name: str) -> int:
        return self._u64(self.lay.maps[name].offset + L.M_DROPS)

    def merge_maps(self, store: MapStore | None = None) -> None:
        """Folds every shared map into the MapStore (what changed since the last merge)."""
        store = store or self.store
        for name, ml in self.lay.maps.items():
            drops = self.map_drops(name)
            new = drops - self._drops.get(name, 0)
            if new:  # the shared table was full: reported like MapStore's own drops
                self._drops[name] = drops
                store.dropped[name] = store.dropped.get(name, 0) + new
            last = self._last.setdefault(name, {})
            for key, cur in self.read_map(name).items():
                prev = last.get(key)
                if prev == cur:
                    continue
                last[key] = cur
                _apply(store, ml, key, prev, cur)


def _key(ml: L.MapLayout, words: tuple[int, ...]) -> tuple:
    """A slot's key words back as the trap path's key: `comm` words become its text."""
    out: list[object] = []
    i = 1
    for kk in ml.key_kinds:
        if kk == "comm":
            out.append(decode_cstr(struct.pack("<QQ", words[i], words[i + 1])))
            i += 2
        else:
            out.append(wrap_s64(words[i]))
            i += 1
    return tuple(out)


def _combine(ml: L.MapLayout, vals: tuple[int, ...]) -> object:
    k, w, stride = ml.kind, ml.words, ml.stride
    if k == "int":
        return (vals[0], wrap_s64(vals[1]), vals[2])  # present, value, sequence
    shards = [vals[s * stride:s * stride + w] for s in range(L.SHARDS)]
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


def _apply(store: MapStore, ml: L.MapLayout, key: tuple, prev: Any, cur: Any) -> None:
    """Adds what changed between two raw readings of one element to the MapStore."""
    name, kind = ml.name, ml.kind
    if kind == "int":
        present, value, _seq = cur
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
        state: Any = m.entries.get(k)
        if state is None:
            if store._full(m):
                return
            state = m.entries[k] = new_state(kind, m.lhist_args, m.hist_bits or 0)
        if kind == "count":
            state.count = (state.count + cur - (prev or 0)) & MASK64
        elif kind == "sum":
            state.total = wrap_s64(state.total + cur - (prev or 0))
        elif kind in ("avg", "stats"):
            pc, pt = prev or (0, 0)
            cc, ct = cur
            state.count = (state.count + cc - pc) & MASK64
            state.total = wrap_s64(state.total + ct - pt)
        elif kind in ("min", "max"):
            state.add(cur)
        else:
            before = prev or (0,) * len(cur)
            for i, (c, p) in enumerate(zip(cur, before, strict=True)):
                state.buckets[i] = (state.buckets[i] + c - p) & MASK64

"""Map storage of a session: every `@name[keys]` with its values and aggregation states.

Why a store of its own: handlers update maps in hit order while the hit thread is stopped,
and the output layer prints them later, sorted as bpftrace sorts. Both sides need the same
view of a map's kind (count, hist, plain int, string, ...) and of its keys.

API (all names are bare map names as in the AST: "" for `@`, "x" for `@x`):

    store = MapStore(plan.maps)              # MapDecls give kinds up front (optional)
    store.aggregate("x", (comm,), "count")   # @x[comm] = count()
    store.aggregate("h", (), "hist", v)      # @h = hist(v)
    store.aggregate("l", (), "lhist", v, (0, 100, 10))
    store.assign("s", (pid,), "abc")         # @s[pid] = "abc"
    store.get("s", (pid,))                   # value, or 0 / "" when the key is missing
    store.incdec("n", (), "++", prefix=False)  # @n++ -> value of the expression
    store.delete("x", (k,)); store.clear("x"); store.zero("x")
    store.has_key("x", (k,)); store.len("x")
    store.items("x")                         # [(key, value)] sorted by key: for ($kv : @x)

Thread safety: handlers update maps on the tracer thread while deferred print() runs on
the effect thread, so every operation holds the store's lock and printing works on
`BpfMap.snapshot()` copies.

A key is always a tuple: () for a scalar map, (k,) for `@m[k]`, (a, b) for `@m[a, b]`.
Integers wrap to signed 64 bits; bytes keys become text so `@m["a"]` and a key read from
the target as b"a" are one entry. Aggregation values are state objects (`CountState`,
`HistState`, ...); `get` returns what reading the element yields in an expression.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from runtime.aggregations import (
    MapError,
    check_lhist_args,
    copy_value,
    new_state,
)
from runtime.cint import wrap_s64, wrap_u64
from uplang.vocab.calls import AGGREGATIONS

AGG_KINDS = AGGREGATIONS
VALUE_KINDS = frozenset(
    {"int", "str", "tuple", "stack", "usym", "buf", "timestamp", "record", "array"}
)
# Other spellings of value kinds (front-end names, C-ish names) -> the canonical kind.
KIND_ALIASES = MappingProxyType({
    "integer": "int", "bool": "int", "ptr": "int", "pointer": "int", "uaddr": "int",
    "string": "str", "comm": "str", "func": "str", "probe": "str",
    "ustack": "stack", "kstack": "stack", "buffer": "buf", "ksym": "usym",
})
# Value kinds whose missing-key default is the empty string, not 0; they may share a map.
STR_KINDS = frozenset({"str", "usym", "timestamp"})

Key = tuple[object, ...]


def canonical_kind(kind: str) -> str:
    return KIND_ALIASES.get(kind, kind)


def value_kind(value: object) -> str:
    """The plain-value kind of a Python value, for maps that had no declaration."""
    if isinstance(value, bool | int):
        return "int"
    if isinstance(value, str | bytes):
        return "str"
    if isinstance(value, tuple):
        return "tuple"
    # Output value types name their own kind (stack, usym, buf, timestamp).
    return getattr(value, "KIND", "other")


def normalize_key(key: object) -> Key:
    """Keys are tuples; ints wrap to int64; bytes become text (one entry per spelling)."""
    if not isinstance(key, tuple):
        key = (key,)
    return tuple(_normalize_key_elem(k) for k in key)


def _normalize_key_elem(k: object) -> object:
    if isinstance(k, bool):
        return int(k)
    if isinstance(k, int):
        return wrap_s64(k)
    if isinstance(k, bytes):
        end = k.find(b"\0")
        return (k if end < 0 else k[:end]).decode("utf-8", "surrogateescape")
    if isinstance(k, tuple):
        return tuple(_normalize_key_elem(e) for e in k)
    return k


def key_sort_key(key: Key) -> tuple:
    """bpftrace sorts keys element by element: integers as uint64, strings bytewise."""
    return tuple(_elem_sort_key(k) for k in key)


def _elem_sort_key(k: object) -> tuple:
    if isinstance(k, int):
        return (0, wrap_u64(k))
    if isinstance(k, str):
        return (1, k.encode("utf-8", "surrogateescape"))
    if isinstance(k, tuple):
        return (2, key_sort_key(k))
    return (3, type(k).__name__, str(k))


# ----------------------------------------------------------------------------- maps


@dataclass
class BpfMap:
    """One map: its kind and entries. kind is an aggregation kind or a plain value kind
    ('int', 'str', 'tuple', 'stack', 'usym', 'buf', 'timestamp', 'record', 'array');
    "" until first use."""

    name: str
    kind: str = ""
    key_arity: int | None = None
    lhist_args: tuple[int, int, int] | None = None
    entries: dict[Key, object] = field(default_factory=dict)
    hist_bits: int | None = None  # hist(x, bits): fixed by the first use
    lock: threading.RLock = field(
        default_factory=threading.RLock, repr=False, compare=False
    )

    def snapshot(self) -> list[tuple[Key, object]]:
        """A consistent copy of the entries (states copied), safe to format at leisure."""
        with self.lock:
            return [(k, copy_value(v)) for k, v in self.entries.items()]

    @property
    def display_name(self) -> str:
        return "@" + self.name

    @property
    def is_aggregation(self) -> bool:
        return self.kind in AGG_KINDS

    def default(self) -> object:
        """What reading a missing key yields (bpftrace's zero-initialised value)."""
        return "" if self.kind in STR_KINDS else 0

    def _bind_kind(self, kind: str) -> None:
        kind = canonical_kind(kind)
        if self.kind == kind or (self.kind in STR_KINDS and kind in STR_KINDS):
            return
        if self.kind and (self.kind in AGG_KINDS or self.kind in VALUE_KINDS):
            raise MapError(f"{self.display_name} holds {self.kind} values, not {kind}")
        # Unset, or a declared kind we do not know: the first value decides.
        self.kind = kind

    def _check_key(self, key: Key) -> None:
        if self.key_arity is None:
            self.key_arity = len(key)
        elif len(key) != self.key_arity:
            raise MapError(
                f"{self.display_name} takes {self.key_arity} key(s), got {len(key)}"
            )

    def read(self, key: Key) -> object:
        with self.lock:
            value = self.entries.get(key)
        if value is None:
            return self.default()
        if self.is_aggregation:
            return value.read()  # type: ignore[attr-defined]
        return value


class MapStore:
    """All maps of one session, by bare name; maps come into being on first use."""

    def __init__(self, decls: Iterable[object] = (), max_keys: int = 0) -> None:
        self._maps: dict[str, BpfMap] = {}
        self._lock = threading.RLock()
        # bpftrace's max_map_keys: a full map keeps its keys and drops new ones (0: no cap).
        self.max_keys = max_keys
        self.dropped: dict[str, int] = {}
        self.declare(decls)

    def _full(self, m: BpfMap) -> bool:
        """True (and the drop counted) when m cannot take one more key."""
        if self.max_keys and len(m.entries) >= self.max_keys:
            self.dropped[m.name] = self.dropped.get(m.name, 0) + 1
            return True
        return False

    def declare(self, decls: Iterable[object]) -> None:
        """Bind each declared map (uplang.plan.MapDecl, duck-typed so the runtime does not
        depend on the front end) to the kind and key count the checks inferred. An empty
        map (new, or cleared) takes the declaration; one that holds values keeps its kind,
        and a declaration that disagrees raises MapError (the REPL's edited scripts)."""
        with self._lock:
            for d in decls:
                m = self.map(d.name)  # type: ignore[attr-defined]
                kind = canonical_kind(d.value_kind)  # type: ignore[attr-defined]
                arity = d.key_arity  # type: ignore[attr-defined]
                if not m.entries:
                    m.kind = kind
                    m.key_arity = arity
                    m.lhist_args = d.lhist_args  # type: ignore[attr-defined]
                    continue
                same_kind = m.kind == kind or {m.kind, kind} <= STR_KINDS
                if not same_kind or m.key_arity != arity:
                    keys = f" with {m.key_arity} key(s)" if m.key_arity else ""
                    raise MapError(f"{m.display_name} still holds {m.kind} values{keys}")

    # ---- lookup

    def map(self, name: str) -> BpfMap:
        with self._lock:
            m = self._maps.get(name)
            if m is None:
                m = self._maps[name] = BpfMap(name, lock=self._lock)
            return m

    def names(self) -> list[str]:
        """Map names sorted as bpftrace prints them at exit."""
        with self._lock:
            return sorted(self._maps)

    def maps(self) -> list[BpfMap]:
        with self._lock:
            return [self._maps[n] for n in sorted(self._maps)]

    def __contains__(self, name: str) -> bool:
        return name in self._maps

    # ---- updates

    def aggregate(
        self,
        name: str,
        key: object,
        kind: str,
        value: int = 0,
        lhist_args: tuple[int, int, int] | None = None,
        hist_bits: int = 0,
    ) -> None:
        """`@name[key] = kind(value[, min, max, step])`, `@name[key] = hist(value, bits)`."""
        if kind not in AGG_KINDS:
            raise MapError(f"{kind}() is not an aggregation")
        k = normalize_key(key)
        with self._lock:
            m = self.map(name)
            m._bind_kind(kind)
            m._check_key(k)
            if kind == "lhist":
                args = tuple(lhist_args) if lhist_args is not None else m.lhist_args
                if args is None:
                    raise MapError("lhist() needs min, max and step")
                if m.lhist_args is None:
                    lo, hi, step = args
                    check_lhist_args(lo, hi, step)
                    m.lhist_args = (lo, hi, step)
                elif args != m.lhist_args:
                    raise MapError(
                        f"{m.display_name}: lhist() arguments must be the same on every use"
                    )
            if kind == "hist":
                if m.hist_bits is None:
                    m.hist_bits = hist_bits
                elif hist_bits != m.hist_bits:
                    raise MapError(
                        f"{m.display_name}: hist() bits must be the same on every use"
                    )
            state = m.entries.get(k)
            if state is None:
                if self._full(m):
                    return
                state = m.entries[k] = new_state(kind, m.lhist_args, m.hist_bits or 0)
            state.add(value)  # type: ignore[attr-defined]

    def assign(self, name: str, key: object, value: object) -> None:
        """`@name[key] = value` for a plain (non-aggregation) value."""
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            # Keep an int subclass (a pointer prints as 0x...), wrapped like any int.
            value = wrap_s64(value) if type(value) is int else type(value)(wrap_s64(value))
        k = normalize_key(key)
        with self._lock:
            m = self.map(name)
            if m.is_aggregation:
                raise MapError(
                    f"{m.display_name} is a {m.kind}() map; assign with {m.kind}()"
                )
            m._bind_kind(value_kind(value))
            m._check_key(k)
            if k not in m.entries and self._full(m):
                return
            m.entries[k] = value

    def get(self, name: str, key: object = ()) -> object:
        """The element's value; a missing key (or map) reads as 0, or "" for strings."""
        with self._lock:
            m = self._maps.get(name)
            if m is None:
                return 0
            return m.read(normalize_key(key))

    def incdec(self, name: str, key: object, op: str, prefix: bool) -> int:
        """`@name[key]++` and friends; returns the value of the expression."""
        with self._lock:
            old = self.get(name, key)
            if not isinstance(old, int):
                raise MapError(f"@{name}: {op} needs an integer value")
            new = wrap_s64(old + (1 if op == "++" else -1))
            self.assign(name, key, new)
            return new if prefix else old

    def delete(self, name: str, key: object = ()) -> bool:
        """Remove one element; True when it existed."""
        with self._lock:
            m = self._maps.get(name)
            if m is None:
                return False
            return m.entries.pop(normalize_key(key), None) is not None

    def clear(self, name: str) -> None:
        """Delete every element (bpftrace's clear())."""
        with self._lock:
            if name in self._maps:
                self._maps[name].entries.clear()

    def zero(self, name: str) -> None:
        """Keep the keys, reset every value (bpftrace's zero())."""
        with self._lock:
            m = self._maps.get(name)
            if m is None:
                return
            for k in m.entries:
                if m.is_aggregation:
                    m.entries[k] = new_state(m.kind, m.lhist_args, m.hist_bits or 0)
                else:
                    m.entries[k] = m.default()

    def has_key(self, name: str, key: object) -> bool:
        with self._lock:
            m = self._maps.get(name)
            return m is not None and normalize_key(key) in m.entries

    def len(self, name: str) -> int:
        with self._lock:
            m = self._maps.get(name)
            return 0 if m is None else len(m.entries)

    def items(self, name: str) -> list[tuple[object, object]]:
        """(key, value) pairs sorted by key, for `for ($kv : @m)`: a one-element key is
        the element itself, a multi-key is a tuple; aggregations yield their read value."""
        with self._lock:
            m = self._maps.get(name)
            if m is None:
                return []
            out: list[tuple[object, object]] = []
            for k in sorted(m.entries, key=key_sort_key):
                v = m.entries[k]
                if m.is_aggregation:
                    v = v.read()  # type: ignore[attr-defined]
                out.append((k[0] if len(k) == 1 else k, v))
            return out


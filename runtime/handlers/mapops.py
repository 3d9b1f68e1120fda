"""Map operations as compiled handlers call them: one bound method per operation.

Handlers hold the `BpfMap` objects themselves (bound as globals at compile time), so the
common case (an aggregation on an existing element) is a dict lookup and one `add`; anything
else goes through `MapStore`, which owns kinds, key checks and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.maps import BpfMap, MapStore


@dataclass(frozen=True)
class MapOps:
    store: MapStore

    def agg(self, m: BpfMap, key: tuple, kind: str, value: int) -> None:
        state = m.entries.get(key)
        if state is None:
            self.store.aggregate(m.name, key, kind, value)
        else:
            state.add(value)  # type: ignore[attr-defined]

    def agg_lhist(self, m: BpfMap, key: tuple, value: int, lo: int, hi: int, step: int) -> None:
        state = m.entries.get(key)
        if state is None:
            self.store.aggregate(m.name, key, "lhist", value, (lo, hi, step))
        else:
            state.add(value)  # type: ignore[attr-defined]

    def agg_hist(self, m: BpfMap, key: tuple, value: int, bits: int) -> None:
        """hist(x, bits) with bits > 0 (plain hist() goes through agg)."""
        state = m.entries.get(key)
        if state is None or m.hist_bits != bits:
            self.store.aggregate(m.name, key, "hist", value, hist_bits=bits)
        else:
            state.add(value)  # type: ignore[attr-defined]

    @staticmethod
    def get(m: BpfMap, key: tuple) -> object:
        return m.read(key)

    def set(self, m: BpfMap, key: tuple, value: object) -> None:
        self.store.assign(m.name, key, value)

    def add(self, m: BpfMap, key: tuple, delta: int, post: bool) -> int:
        return self.store.incdec(m.name, key, "++" if delta > 0 else "--", prefix=not post)

    def delete(self, m: BpfMap, key: tuple) -> None:
        self.store.delete(m.name, key)

    def clear(self, m: BpfMap) -> None:
        self.store.clear(m.name)

    def zero(self, m: BpfMap) -> None:
        self.store.zero(m.name)

    def len(self, m: BpfMap) -> int:
        return self.store.len(m.name)

    def has(self, m: BpfMap, key: tuple) -> int:
        return 1 if self.store.has_key(m.name, key) else 0

    def items(self, m: BpfMap) -> list[tuple[object, object]]:
        return self.store.items(m.name)

    def namespace(self) -> dict[str, object]:
        return {
            "_agg": self.agg, "_agg_lhist": self.agg_lhist, "_agg_hist": self.agg_hist, "_map_get": self.get,
            "_map_set": self.set, "_map_add": self.add, "_map_delete": self.delete,
            "_map_clear": self.clear, "_map_zero": self.zero, "_map_len": self.len,
            "_map_has": self.has, "_map_items": self.items,
        }


def snapshot(m: BpfMap) -> BpfMap:
    """A copy for printing later: the hit goes on mutating the live map."""
    return BpfMap(m.name, m.kind, m.key_arity, m.lhist_args, dict(m.snapshot()))

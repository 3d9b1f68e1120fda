"""Folded stacks for flame graphs (`-f folded`): one `frame;frame;frame count` line per
distinct stack, outermost frame first, as Brendan Gregg's stackcollapse scripts write them
and flamegraph.pl, inferno-flamegraph and speedscope read them.

A map whose keys hold a stack and whose values are counts (count(), sum(), integers) folds:
its other key parts come first (`@[comm, ustack]` gives `comm;main;work 12`), frames are
named without offsets (so the samples of one function merge), frames in no known function
read `[unknown]`, and entries that fold to the same line add up. Everything else (printf
output, maps that do not fold) goes to the diagnostic stream as text, so that the output
file holds folded lines only.
"""

from __future__ import annotations

from typing import IO

from runtime.maps import BpfMap, MapStore
from runtime.output.text import TextOutput, map_text
from runtime.output.values import Stack
from runtime.output.valuetext import value_text

FOLDED_KINDS = ("count", "sum", "int")


def frame_name(symbol: str | None) -> str:
    # ';' separates frames and a trailing number would read as the count: neither may
    # appear inside a name.
    return (symbol or "[unknown]").replace(";", ":")


def stack_part(stack: Stack) -> list[str]:
    """The frames of one stack, outermost first."""
    return [frame_name(f.symbol) for f in reversed(stack.frames)]


def folded_lines(m: BpfMap) -> list[str] | None:
    """The map as folded lines (sorted), or None when it does not fold."""
    if m.kind not in FOLDED_KINDS:
        return None
    entries = m.snapshot()
    if not entries or not any(isinstance(k, Stack) for k in entries[0][0]):
        return None
    totals: dict[str, int] = {}
    for key, value in entries:
        parts: list[str] = []
        for k in key:
            if isinstance(k, Stack):
                parts += stack_part(k)
            else:
                parts.append(frame_name(value_text(k)).replace("\n", " "))
        count = value.read() if hasattr(value, "read") else value
        if not isinstance(count, int):
            return None
        line = ";".join(parts) or "[empty]"
        totals[line] = totals.get(line, 0) + count
    return [f"{line} {count}" for line, count in sorted(totals.items()) if count > 0]


class FoldedOutput(TextOutput):
    """`-f folded`: stack maps as folded lines on `out`, all other output as text on
    `diag`."""

    def __init__(self, out: IO, diag: IO | None = None) -> None:
        text = diag if diag is not None else out
        super().__init__(text, text)
        self.folded = out

    def _fold(self, m: BpfMap) -> bool:
        lines = folded_lines(m)
        if lines is None:
            return False
        if lines:
            text = "\n".join(lines) + "\n"
            with self._lock:
                self.folded.write(text)
                self.folded.flush()
        return True

    def map(self, m: BpfMap, top: int = 0, div: int = 0) -> None:
        if top or div or not self._fold(m):
            super().map(m, top, div)

    def maps_at_exit(self, store: MapStore) -> None:
        rest = [m for m in store.maps() if m.entries and not self._fold(m)]
        if rest:
            self.write("\n\n" + "".join(map_text(m) for m in rest))

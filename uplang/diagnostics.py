"""Diagnostics: one-line errors with a source excerpt and a caret, collected and shown together.

Every user mistake the front end finds becomes a Diagnostic; the parser, the checks and the
CLI raise or collect them and render them the same way, like a C compiler does.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from uplang.ast import Span


@dataclass(frozen=True)
class Diagnostic:
    """One problem at one place. line/col are 1-based; end_col is exclusive (0: one char)."""

    file: str
    line: int
    col: int
    message: str
    hint: str = ""
    end_col: int = 0

    @classmethod
    def at(cls, span: Span, message: str, hint: str = "") -> Diagnostic:
        end_col = span.end_col if span.end_line == span.line else 0
        return cls(span.file, span.line, span.col, message, hint, end_col)

    def headline(self) -> str:
        if self.line <= 0:
            return f"{self.file}: error: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: error: {self.message}"

    def render(self, source: str | None = None) -> str:
        """The headline, the source line with a `^~~~` caret under the span, and the hint."""
        out = [self.headline()]
        lines = source.splitlines() if source is not None else []
        if 0 < self.line <= len(lines):
            text = lines[self.line - 1].expandtabs(1)
            out.append(f"  {text}")
            col = max(self.col, 1)
            width = max(1, self.end_col - col) if self.end_col > col else 1
            width = min(width, max(1, len(text) - col + 1))
            out.append("  " + " " * (col - 1) + "^" + "~" * (width - 1))
        if self.hint:
            out.append(f"note: {self.hint}")
        return "\n".join(out)


class UplangError(Exception):
    """The front end's only user-facing error: a list of diagnostics about one script."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source: str | None = None) -> None:
        self.diagnostics = tuple(diagnostics)
        self.source = source
        super().__init__(self.diagnostics[0].headline() if self.diagnostics else "error")

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)


class UplangSyntaxError(UplangError):
    """The script is not in the language (raised by the parser, at the first problem)."""


class UplangCheckError(UplangError):
    """The script parses but is not meaningful (every problem the checks found)."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A `did you mean 'x'?` hint for the closest candidate, or "" when nothing is close.

    difflib finds the near ones; edit distance with transpositions then picks among them,
    because typing two letters swapped ('prinft') is the commonest slip.
    """
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=6, cutoff=0.6)
    if not matches:
        return ""
    best = min(matches, key=lambda m: (edit_distance(word, m), abs(len(m) - len(word)), m))
    return f"did you mean '{best}'?"


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]

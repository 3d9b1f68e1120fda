"""Helpers for the runtime-core tests: placements by symbol, spawning with captured output."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

from runtime.resolve import Placement, resolve_uprobe
from runtime.session import ExitStatus, Session


def placement(path: Path | str, func: str, pid: int | None = None, offset: int = 0) -> Placement:
    """The single placement of `func` (+offset) in `path`."""
    found = resolve_uprobe(str(path), func, offset, None, pid)
    assert len(found) == 1, found
    return found[0]


def signed(value: int, bits: int = 64) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def uninstrumented(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


class Spawned:
    """A spawned session whose stdout goes to a file, read back after run()."""

    def __init__(self, argv: list[str], tmp_path: Path, reaper) -> None:  # noqa: ANN001
        self.out_path = tmp_path / "stdout.txt"
        self._out = open(self.out_path, "w")  # noqa: SIM115 - closed in output()
        self.session = Session.spawn(argv, stdout=self._out)
        reaper.add(self.session.pid)

    def run(self) -> ExitStatus:
        try:
            return self.session.run()
        finally:
            self.session.detach()

    def output(self) -> str:
        self._out.close()
        return self.out_path.read_text()


class Lines:
    """A text stream (probe output) that wakes waiters as text arrives: tests wait for
    what they expect to see instead of sleeping."""

    WAIT_S = 30.0

    def __init__(self) -> None:
        self.text = ""
        self.cond = threading.Condition()

    def write(self, s: str) -> int:
        with self.cond:
            self.text += s
            self.cond.notify_all()
        return len(s)

    def flush(self) -> None:
        pass

    def lines(self, prefix: str) -> list[str]:
        with self.cond:
            return [line for line in self.text.splitlines() if line.startswith(prefix)]

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first match of the regular expression `pattern` (multi-line)."""
        rx = re.compile(pattern, re.M)
        with self.cond:
            found = self.cond.wait_for(lambda: rx.search(self.text), self.WAIT_S)
        assert found, f"no {pattern!r} in:\n{self.text}"
        return found

    def wait_lines(self, prefix: str, n: int) -> list[str]:
        """At least `n` lines starting with `prefix`."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.lines(prefix)) >= n, self.WAIT_S)
        assert ok, f"fewer than {n} lines starting {prefix!r} in:\n{self.text}"
        return self.lines(prefix)

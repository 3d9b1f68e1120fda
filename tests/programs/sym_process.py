"""Runs the sym_/usdt_ test programs that print a line and then block on stdin, so the
tests can look at a live process without sleeping; closing stdin lets them exit."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Running:
    proc: subprocess.Popen[str]
    lines: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextmanager
def running(argv: list[str], reaper, until: str = "ready") -> Iterator[Running]:
    """Start `argv`, read its stdout up to the line starting with `until`, yield; at the
    end close stdin (the program exits) and reap it, the reaper kills it if that fails."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reaper.add(proc.pid)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(until):
                break
        else:
            raise AssertionError(f"{argv[0]} ended before printing {until!r}: {lines}")
        yield Running(proc, lines)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()

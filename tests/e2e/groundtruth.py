"""What tests/programs/e2e_target.c does, computed independently of any tracing."""

from __future__ import annotations

NAMES = ("alpha", "beta", "gamma")


def checksum(rounds: int) -> int:
    total = 0
    for i in range(rounds):
        n = len(NAMES[i % 3])
        total += (i + 10 * i + n) + (28 + i) + 40 + n + (2 * i + 2) + (-i)
    return total


def done_line(stdout: str) -> tuple[int, int] | None:
    """(checksum, elapsed ms) from the target's last line, None when it did not finish."""
    for line in stdout.splitlines():
        if line.startswith("done "):
            _, s, ms = line.split()
            return int(s), int(ms)
    return None

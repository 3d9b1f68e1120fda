"""Running one benchmark command and reading what it reports.

Every run is a child process waited with wait4, so the harness gets the child's CPU time
and peak RSS (the tracer's: the target it waits for is far smaller) without polling.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

TARGET_LINE = re.compile(r"^(\d+) (\d+)$", re.M)


class RunFailed(Exception):
    """A benchmark command failed or printed something unexpected; one line for the report."""


@dataclass(frozen=True)
class Outcome:
    """One finished run: output, exit status, wall and CPU seconds, peak RSS in KiB."""

    stdout: str
    stderr: str
    returncode: int
    wall: float
    cpu: float
    maxrss_kib: int


def run(argv: list[str], timeout: float, env: dict[str, str] | None = None,
        cwd: str | None = None) -> Outcome:
    """Run `argv` to completion; kill it (by pid) after `timeout` seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
        killer = threading.Timer(timeout, _kill_group, (proc.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if wall >= timeout:
        raise RunFailed(f"{argv[0]} timed out after {timeout:.0f} s")
    return Outcome(stdout, stderr, proc.returncode, wall,
                   usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def _kill_group(pid: int) -> None:
    """The tool and everything it started (its session): a tracer killed alone would
    leave its target stopped forever."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def loop_ns(outcome: Outcome, calls: int) -> int:
    """The target's own loop time, after checking the target computed the right sum
    (a probe that corrupted a register or skipped a call would change it)."""
    found = TARGET_LINE.findall(outcome.stdout)
    if not found:
        tail = (outcome.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunFailed(f"no target line (exit {outcome.returncode}): {tail[:160]}")
    acc, ns = (int(v) for v in found[-1])
    if acc != calls * (calls + 1) // 2:
        raise RunFailed(f"target computed {acc}, expected {calls * (calls + 1) // 2}")
    return ns

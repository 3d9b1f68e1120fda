"""Start-up, mass placement and memory: how long until probes are in, how long to detach,
and how big the tool grows over a long run.

Times are taken from the outside (the moment the CLI's `Attached N probes` line arrives on
its stderr), so they include interpreter start-up and imports, as a user sees them.
"""

from __future__ import annotations

import os
import selectors
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from measure import RunFailed, loop_ns, run
from trappath import CLI_COUNT, REPO, uprobe_cli

PYTHON_TARGET = "/usr/bin/python3.11"
# `Py*` alone is ~940 sites on Debian's python3.11; the two private prefixes take it past
# 1,000 with functions that are as ordinary as the public ones.
MASS_PATTERNS = ("Py*", "_PyObject_*", "_PyUnicode_*")
# Waits for the target to read a line, then evaluates it: proves it survived the detach.
ECHO_PROGRAM = "import sys; print('ready', flush=True); print(eval(sys.stdin.readline()), flush=True)"


@dataclass(frozen=True)
class Attach:
    """One attach-place-detach cycle on a running process."""

    sites: int
    to_attached_s: float
    detach_s: float


@dataclass(frozen=True)
class Memory:
    """Peak RSS of the tool (KiB) over `events` hits of one script."""

    label: str
    events: int
    maxrss_kib: int
    wall_s: float


def _read_until(proc: subprocess.Popen[bytes], stream: str, needle: bytes,
                timeout: float) -> tuple[bytes, float]:
    """Read `proc`'s pipe until a line holding `needle`; returns (line, arrival time)."""
    pipe = getattr(proc, stream)
    sel = selectors.DefaultSelector()
    sel.register(pipe, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise RunFailed(f"no {needle.decode()!r} within {timeout:.0f} s")
            chunk = os.read(pipe.fileno(), 65536)
            now = time.monotonic()
            if not chunk:
                raise RunFailed(f"{stream} closed before {needle.decode()!r}: {buf[-200:]!r}")
            buf += chunk
            for line in buf.splitlines():
                if needle in line:
                    return line, now
    finally:
        sel.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def attach_cycle(patterns: tuple[str, ...], timeout: float = 120) -> Attach:
    """Start python3.11, attach the CLI with one probe per pattern, wait for
    `Attached N probes`, Ctrl-C it, and check the target still works afterwards."""
    target = subprocess.Popen([PYTHON_TARGET, "-c", ECHO_PROGRAM], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    tool = None
    try:
        _read_until(target, "stdout", b"ready", timeout)
        probes = ", ".join(f"uprobe:{PYTHON_TARGET}:{p}" for p in patterns)
        argv = [*uprobe_cli(), "-e", f"{probes} {{ @c = count(); }}", "-p", str(target.pid)]
        start = time.monotonic()
        tool = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=str(REPO))
        line, attached = _read_until(tool, "stderr", b"Attached", timeout)
        tool.send_signal(signal.SIGINT)
        tool.wait(timeout)
        detached = time.monotonic()
        if tool.returncode != 0:
            raise RunFailed(f"uprobe exited {tool.returncode} after Ctrl-C")
        assert target.stdin is not None
        target.stdin.write(b"6*7\n")
        target.stdin.flush()
        answer, _ = _read_until(target, "stdout", b"42", timeout)
        sites = int(line.split()[1])
        return Attach(sites, attached - start, detached - attached)
    finally:
        if tool is not None:
            _kill(tool)
        _kill(target)


def first_probe_spawned(target: Path, timeout: float = 60) -> float:
    """Seconds from starting the CLI with -c to its `Attached 1 probe` line."""
    argv = [*uprobe_cli(), "-e", f"uprobe:{target}:bench_fn {{ @c = count(); }}",
            "-c", f"{target} 1"]
    start = time.monotonic()
    tool = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=str(REPO))
    try:
        _, attached = _read_until(tool, "stderr", b"Attached", timeout)
        tool.wait(timeout)
        return attached - start
    finally:
        _kill(tool)


def interpreter_start(runs: int) -> float:
    """Median seconds for `uprobe --version`: the floor any start-up number stands on."""
    times = []
    for _ in range(runs):
        times.append(run([*uprobe_cli(), "--version"], 60, cwd=str(REPO)).wall)
    return statistics.median(times)


def dry_run_start(target: Path, runs: int) -> float:
    """Median seconds for `uprobe --dry-run` of a one-probe script: interpreter, imports,
    grammar, parse, check and plan, with no process touched."""
    argv = [*uprobe_cli(), "--dry-run", "-e", f"uprobe:{target}:bench_fn {{ @c = count(); }}"]
    times = []
    for _ in range(runs):
        out = run(argv, 60, cwd=str(REPO))
        if out.returncode != 0:
            raise RunFailed(f"--dry-run exited {out.returncode}: {out.stderr.strip()[-160:]}")
        times.append(out.wall)
    return statistics.median(times)


def resolve_only(patterns: tuple[str, ...]) -> tuple[int, float]:
    """(placements, seconds) for resolving the patterns in a fresh interpreter (cold
    ELF cache), measured inside it so that imports are not counted."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r})\n"
        "from runtime.resolve import resolve_uprobe\n"
        "t = time.perf_counter(); n = 0\n"
        f"for p in {patterns!r}: n += len(resolve_uprobe({PYTHON_TARGET!r}, p))\n"
        "print(n, time.perf_counter() - t)\n"
    )
    out = run([sys.executable, "-c", code], 120).stdout.split()
    if len(out) != 2:
        raise RunFailed("resolve-only run printed nothing")
    return int(out[0]), float(out[1])


def peak_memory(target: Path, events: int) -> list[Memory]:
    """Peak RSS of the CLI over `events` hits, for a counting handler, a map that gains a
    key per event and a printing one, beside a one-hit run for the start-up size."""
    probe = f"uprobe:{target}:bench_fn"
    cases = [
        ("count(), 1 event", f"{probe} {{ @c = count(); }}", 1, []),
        ("count()", f"{probe} {{ @c = count(); }}", events, []),
        ("@m[arg0] = count() (one key per event)", f"{probe} {{ @m[arg0] = count(); }}",
         events, ["-o", "/dev/null"]),
        ("printf to /dev/null", f'{probe} {{ printf("%d\\n", arg0); }}', events,
         ["-o", "/dev/null"]),
    ]
    found = []
    for label, text, n, extra in cases:
        argv = [*uprobe_cli(), "-q", *extra, "-e", text, "-c", f"{target} {n}"]
        out = run(argv, 60 + n / 10_000, cwd=str(REPO))
        loop_ns(out, n)
        if not extra:
            problem = CLI_COUNT(out, n)
            if problem:
                raise RunFailed(problem)
        found.append(Memory(label, n, out.maxrss_kib, out.wall))
    return found

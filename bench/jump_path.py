"""The jump path end to end through the `uprobe` command, against the same program
untraced, the trap path (--trap) and bpftrace's kernel uprobes, all in one run.

Per hit = (the target's own loop time traced - untraced) / calls, with the target's loop
timed by the target itself (bench/target.c prints its wall time), so tool start-up never
counts. Cases are interleaved over R runs; medians. Also: the printf drain rate (lines
written to a file per second of the target's loop, with writers waiting on a full ring,
none lost), and python3.11 calling os.getpid() in a loop under
`uprobe:libc:getpid { @[tid] = count(); }` (slowdown factor against untraced, per tool).

    PYTHONPATH=. python3 bench/jump_path.py [--calls N] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPROBE = [sys.executable, "-c", "import sys; from uplang.cli import main; sys.exit(main())"]
PY_LOOP = ("import os, time\n"
           "n = int(os.environ['CALLS'])\n"
           "g = os.getpid\n"
           "t = time.monotonic_ns()\n"
           "for _ in range(n): g()\n"
           "print(n, time.monotonic_ns() - t)\n")


@dataclass
class Case:
    name: str
    tool: str
    argv: list[str]
    calls: int
    env: dict[str, str] = field(default_factory=dict)
    check: str = ""  # a line the tool's output must contain
    loop_ns: list[float] = field(default_factory=list)
    failures: int = 0


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run_case(case: Case, out_dir: Path) -> None:
    out = out_dir / "tool.out"
    e = env()
    e.update(case.env)
    try:
        done = subprocess.run(case.argv, env=e, capture_output=True, text=True, timeout=900,
                              check=False)
    except subprocess.TimeoutExpired:
        case.failures += 1
        return
    # The target prints "ACC NS" (or "N NS" for the Python loop); bpftrace's own lines
    # (@c: N) share its stdout.
    lines = [ln for ln in done.stdout.splitlines() if re.fullmatch(r"-?\d+ \d+", ln.strip())]
    text = done.stdout + (out.read_text() if out.exists() else "")
    if done.returncode != 0 or not lines or (case.check and case.check not in text):
        case.failures += 1
        print(f"  {case.name}: failed ({done.returncode}) {done.stderr[-300:]!r}",
              file=sys.stderr)
        return
    last = lines[-1].split()
    case.loop_ns.append(float(last[1]))
    out.unlink(missing_ok=True)


def build_target(tmp: Path) -> Path:
    exe = tmp / "target"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(ROOT / "bench" / "target.c")],
                   check=True)
    return exe


def cases(target: Path, calls: int, trap_calls: int, tmp: Path) -> list[Case]:
    out = str(tmp / "tool.out")
    count = f"uprobe:{target}:bench_fn {{ @c = count(); }}"
    lat = (f"uprobe:{target}:bench_fn {{ self->ts = nsecs; }} "
           f"uretprobe:{target}:bench_fn {{ @h = hist(nsecs - self->ts); }}")
    ret_count = f"uretprobe:{target}:bench_fn {{ @c = count(); }}"
    printf = f'uprobe:{target}:bench_fn {{ printf("%d\\n", arg0); }}'
    bpf = shutil.which("bpftrace")
    found = [
        Case("untraced", "-", [str(target), str(calls)], calls),
        Case("untraced (trap/bpftrace n)", "-", [str(target), str(trap_calls)], trap_calls),
        Case("jump count()", "uprobe", [*UPROBE, "-q", "-o", out, "-e", count, "-c",
                                         f"{target} {calls}"], calls,
             check=f"@c: {calls}"),
        Case("jump uretprobe count()", "uprobe", [*UPROBE, "-q", "-o", out, "-e", ret_count,
                                                   "-c", f"{target} {calls}"], calls,
             check=f"@c: {calls}"),
        Case("jump uretprobe + latency hist", "uprobe",
             [*UPROBE, "-q", "-o", out, "-e", lat, "-c", f"{target} {calls}"], calls),
        Case("jump printf to a file", "uprobe",
             [*UPROBE, "-q", "-o", out, "-e", printf, "-c", f"{target} {calls}"], calls),
        Case("trap count() (--trap)", "uprobe", [*UPROBE, "--trap", "-q", "-o", out, "-e",
                                                  count, "-c", f"{target} {trap_calls}"],
             trap_calls, check=f"@c: {trap_calls}"),
    ]
    if bpf:
        found.append(Case("bpftrace count() (kernel uprobe)", "bpftrace",
                          [bpf, "-e", count, "-c", f"{target} {trap_calls}"], trap_calls,
                          check=f"@c: {trap_calls}"))
    return found


def python_cases(calls: int, slow_calls: int, tmp: Path) -> list[Case]:
    """The Python loop runs from a file: -c takes one shell-split command string."""
    py = shutil.which("python3.11") or sys.executable
    loop = tmp / "loop.py"
    loop.write_text(PY_LOOP)
    script = "uprobe:libc:getpid { @[tid] = count(); }"
    out = str(tmp / "tool.out")
    argv = [py, str(loop)]
    found = [
        Case("python3.11 getpid loop, untraced", "-", argv, calls, env={"CALLS": str(calls)}),
        Case("python3.11 getpid loop, untraced (bpftrace n)", "-", argv, slow_calls,
             env={"CALLS": str(slow_calls)}),
        Case("python3.11 getpid loop, uprobe (jump)", "uprobe",
             [*UPROBE, "-q", "-o", out, "-e", script, "-c", f"{py} {loop}"], calls,
             env={"CALLS": str(calls)}),
    ]
    bpf = shutil.which("bpftrace")
    if bpf:
        libc = "/lib/x86_64-linux-gnu/libc.so.6"
        found.append(Case("python3.11 getpid loop, bpftrace", "bpftrace",
                          [bpf, "-e", script.replace("libc", libc), "-c", f"{py} {loop}"],
                          slow_calls, env={"CALLS": str(slow_calls)}))
    return found


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--trap-calls", type=int, default=20_000)
    ap.add_argument("--py-calls", type=int, default=10_000_000)
    ap.add_argument("--py-slow-calls", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        target = build_target(tmp)
        all_cases = cases(target, a.calls, a.trap_calls, tmp)
        py_cases = python_cases(a.py_calls, a.py_slow_calls, tmp)
        for _ in range(a.runs):
            for case in all_cases + py_cases:
                run_case(case, tmp)
    base = {c.calls: median(c.loop_ns) for c in all_cases if c.tool == "-"}
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print("| case | calls | loop ns/call (median) | per hit over untraced (ns) | runs ok |")
    print("|---|---:|---:|---:|---:|")
    per_hit: dict[str, float] = {}
    for c in all_cases:
        m = median(c.loop_ns)
        if m is None:
            print(f"| {c.name} | {c.calls} | failed | | 0/{len(c.loop_ns) + c.failures} |")
            continue
        extra = ""
        if c.tool != "-":
            b = base.get(c.calls)
            if b is not None:
                per_hit[c.name] = (m - b) / c.calls
                extra = f"{per_hit[c.name]:.1f}"
        ok = f"{len(c.loop_ns)}/{len(c.loop_ns) + c.failures}"
        print(f"| {c.name} | {c.calls} | {m / c.calls:.1f} | {extra} | {ok} |")
    jump = per_hit.get("jump count()")
    for other in ("trap count() (--trap)", "bpftrace count() (kernel uprobe)"):
        if jump and other in per_hit:
            print(f"\n{other} / jump count(): {per_hit[other] / jump:.0f}x")
    drain = next(c for c in all_cases if c.name == "jump printf to a file")
    if drain.loop_ns:
        print(f"\nprintf drained to a file: {drain.calls / (median(drain.loop_ns) / 1e9) / 1e6:.2f}"
              " M lines/s over the target's loop (writers wait on a full ring; count checked)")
    print("\n| python3.11 loop | calls | ns/call | slowdown vs untraced |")
    print("|---|---:|---:|---:|")
    pbase = {c.calls: median(c.loop_ns) for c in py_cases if c.tool == "-"}
    for c in py_cases:
        m = median(c.loop_ns)
        if m is None:
            print(f"| {c.name} | {c.calls} | failed | |")
            continue
        b = pbase.get(c.calls)
        slow = f"{m / b:.2f}x" if b else ""
        print(f"| {c.name} | {c.calls} | {m / c.calls:.1f} | {slow} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

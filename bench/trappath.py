"""Per-hit cost of the trap path, for uprobe and the alternatives, in one interleaved run.

per hit = (median loop time with the tool - median loop time without) / calls, where the
loop time is what the target measures around its own calls: tool start-up, probe placement
and detach are excluded, so this is the steady-state cost of one hit. Cases run
round-robin (case 1..n, then again) so that load from other processes on a shared machine
spreads over all of them rather than landing on one.
"""

from __future__ import annotations

import re
import shutil
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from measure import Outcome, RunFailed, loop_ns, run
from programs import BENCH_DIR, Programs

REPO = BENCH_DIR.parent
Check = Callable[[Outcome, int], str | None]


@dataclass(frozen=True)
class Case:
    """One way of probing `bench_fn`: `argv` runs the target for `calls` calls.
    `check` returns a problem with the output (wrong hit count, ...) or None."""

    name: str
    tool: str
    placement: str
    argv: list[str]
    calls: int
    check: Check | None = None
    baseline: bool = False


@dataclass
class CaseResult:
    case: Case
    loop_ns: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median_loop_ns(self) -> float | None:
        return statistics.median(self.loop_ns) if self.loop_ns else None


def _count_line(pattern: str) -> Check:
    """A check that `pattern` (with one group) reports exactly `calls` hits."""
    rx = re.compile(pattern, re.M)

    def check(outcome: Outcome, calls: int) -> str | None:
        m = rx.search(outcome.stdout + outcome.stderr)
        if m is None:
            return f"no hit count ({pattern!r}) in the output"
        if int(m.group(1)) != calls:
            return f"counted {m.group(1)} hits, expected {calls}"
        return None

    return check


CLI_COUNT = _count_line(r"^@c: (\d+)$")
RAW_COUNT = _count_line(r"^hits (\d+)$")
LIB_COUNT = _count_line(r"^count (\d+)$")
GDB_COUNT = _count_line(r"breakpoint already hit (\d+) times?")


def uprobe_cli() -> list[str]:
    """The CLI of this checkout, as the console script runs it: never an installed copy
    (`uprobe` on PATH may be an older `pip install` of another tree)."""
    return [sys.executable, "-c",
            f"import sys; sys.path.insert(0, {str(REPO)!r}); "
            "from uplang.cli import main; sys.exit(main())"]


def _pinned(argv: list[str], placement: str, cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if placement == "pinned" else argv


def uprobe_cases(p: Programs, calls: int, cpu: int, all_cpus: str) -> list[Case]:
    """The CLI cases (compiled handlers) and the library-API cases (a Python closure)."""
    target = str(p.target)
    probe = f"uprobe:{target}:bench_fn"
    scripts = [
        ("count()", f"{probe} {{ @c = count(); }}", [], CLI_COUNT),
        ("uretprobe count()", f"uretprobe:{target}:bench_fn {{ @c = count(); }}", [], CLI_COUNT),
        ("printf to /dev/null", f'{probe} {{ printf("%d\\n", arg0); }}', ["-o", "/dev/null"], None),
        ("false predicate", f"{probe} /arg0 == 123456789123/ {{ @c = count(); }}", [], None),
    ]
    cases = []
    for placement in ("unpinned", "pinned"):
        for label, text, extra, check in scripts:
            # Pinned: the CLI's own --cpu (tracer + the program it starts on one CPU).
            pin = ["--cpu", str(cpu)] if placement == "pinned" else []
            argv = [*uprobe_cli(), "-q", *pin, *extra, "-e", text, "-c", f"{target} {calls}"]
            cases.append(Case(f"uprobe {label}", "uprobe", placement, argv, calls, check))
    # Tracer pinned, target free: the target re-widens its own affinity through an exec
    # that the tracer follows (--cpu pins the program it starts too).
    argv = [*uprobe_cli(), "-q", "-e", scripts[0][1],
            "-c", f"taskset -c {all_cpus} {target} {calls}"]
    cases.append(Case("uprobe count()", "uprobe", "tracer pinned",
                      ["taskset", "-c", str(cpu), *argv], calls, CLI_COUNT))
    lib = [sys.executable, str(BENCH_DIR / "lib_driver.py")]
    for placement in ("unpinned", "pinned", "tracer pinned"):
        argv = lib + (["--pin-tracer", str(cpu)] if placement == "tracer pinned" else [])
        cases.append(Case("uprobe library API, closure", "uprobe-lib", placement,
                          _pinned([*argv, target, str(calls)], placement, cpu), calls, LIB_COUNT))
    return cases


def raw_cases(p: Programs, calls: int, cpu: int) -> list[Case]:
    site = [hex(p.site_vaddr), str(p.site_len), str(p.target), str(calls)]
    raw = str(p.raw_tracer)
    return [
        Case("raw C tracer", "raw", "unpinned", [raw, *site], calls, RAW_COUNT),
        Case("raw C tracer", "raw", "pinned", ["taskset", "-c", str(cpu), raw, *site],
             calls, RAW_COUNT),
        Case("raw C tracer", "raw", "tracer pinned", [raw, "-c", str(cpu), *site],
             calls, RAW_COUNT),
    ]


def other_tool_cases(p: Programs, calls: int, work: Path, bpftrace: str | None) -> list[Case]:
    """gdb and ltrace (if installed), bpftrace (if it runs here): unpinned, as users run them."""
    target = str(p.target)
    cases = []
    if shutil.which("gdb"):
        script = work / "gdb_commands"
        script.write_text("set pagination off\nbreak bench_fn\ncommands\nsilent\ncontinue\nend\n"
                          "run\ninfo breakpoints\n")
        cases.append(Case("gdb break + silent/continue", "gdb", "unpinned",
                          ["gdb", "-nx", "-batch", "-x", str(script), "--args", target,
                           str(calls)], calls, GDB_COUNT))
    if shutil.which("ltrace"):
        cases.append(Case("ltrace -x bench_fn", "ltrace", "unpinned",
                          ["ltrace", "-x", "bench_fn", "-o", "/dev/null", target, str(calls)],
                          calls))
    if bpftrace:
        cases.append(Case("bpftrace count() (kernel uprobe)", "bpftrace", "unpinned",
                          [bpftrace, "-e", f"uprobe:{target}:bench_fn {{ @c = count(); }}",
                           "-c", f"{target} {calls}"], calls, CLI_COUNT))
    return cases


def baseline_case(p: Programs, calls: int) -> Case:
    return Case("no probe", "none", "unpinned", [str(p.target), str(calls)], calls,
                baseline=True)


def measure(cases: list[Case], runs: int, timeout: float,
            progress: Callable[[str], None]) -> list[CaseResult]:
    """`runs` rounds over all cases; a failed run is recorded, not fatal."""
    results = [CaseResult(c) for c in cases]
    for r in range(runs):
        for res in results:
            c = res.case
            try:
                out = run(c.argv, timeout, cwd=str(REPO))
                ns = loop_ns(out, c.calls)
                problem = c.check(out, c.calls) if c.check else None
                if problem:
                    raise RunFailed(problem)
            except (RunFailed, OSError) as e:
                res.errors.append(str(e))
                progress(f"  run {r + 1}/{runs} {c.name} [{c.placement}]: FAILED {e}")
                continue
            res.loop_ns.append(ns)
            res.cpu_s.append(out.cpu)
            progress(f"  run {r + 1}/{runs} {c.name} [{c.placement}]: "
                     f"{ns / c.calls / 1000:.2f} us/call")
    return results


def per_hit_us(res: CaseResult, baseline: CaseResult) -> float | None:
    """Median extra loop time per call, in microseconds, against the no-probe median
    scaled to the same number of calls."""
    m, b = res.median_loop_ns(), baseline.median_loop_ns()
    if m is None or b is None:
        return None
    base = b / baseline.case.calls * res.case.calls
    return (m - base) / res.case.calls / 1000


def spread_us(res: CaseResult) -> tuple[float, float] | None:
    """(min, max) of the per-run loop time per call, for showing the noise."""
    if not res.loop_ns:
        return None
    return min(res.loop_ns) / res.case.calls / 1000, max(res.loop_ns) / res.case.calls / 1000


def cpu_per_hit_us(res: CaseResult) -> float | None:
    """Median CPU time (tool + target, user + sys, start-up included) per call."""
    if not res.cpu_s:
        return None
    return statistics.median(res.cpu_s) / res.case.calls * 1e6

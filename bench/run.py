"""The benchmark harness (issue #7): per-hit cost of uprobe beside a raw C ptrace tracer,
bpftrace, gdb and ltrace; CPU placement; where a hit's time goes; start-up, mass placement
and memory. Writes bench/RESULTS.md. Not part of the test suite.

    python3 bench/run.py             # full: 5 runs, 100,000 calls, 1,000,000 events
    python3 bench/run.py --quick     # a smoke run in about two minutes

bpftrace is installed with apt-get and py-spy with pip when missing (benchmark only, never
project dependencies); --no-install skips whatever is not there. Run from anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import alternatives  # noqa: E402
import hotpath_costs  # noqa: E402
import hotpath_profile  # noqa: E402
import machine  # noqa: E402
import startup  # noqa: E402
import trappath  # noqa: E402
from measure import RunFailed, loop_ns, run  # noqa: E402
from programs import BENCH_DIR, BuildError, Programs, build  # noqa: E402
from results import Accounting, Report, render  # noqa: E402


def _say(text: str) -> None:
    print(text, flush=True)


def _cpu() -> int:
    """The CPU to pin to: the last one we may run on (CPU 0 takes most interrupts)."""
    return max(os.sched_getaffinity(0))


def _all_cpus() -> str:
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


def trap_path(rep: Report, progs: Programs, work: Path, calls: int, install: bool) -> None:
    cpu = _cpu()
    slow = max(calls // 20, 1000)  # gdb and ltrace cost ~10x more per hit
    bpf = alternatives.bpftrace(install)
    if bpf.path is None:
        rep.notes.append(f"bpftrace skipped: {bpf.note}")
    else:
        rep.notes.append(f"bpftrace: {bpf.note}")
    for tool, argv in (("gdb", ["gdb", "--version"]), ("ltrace", ["ltrace", "-V"])):
        version = alternatives.version_of(argv)
        rep.notes.append(f"{tool}: {version}" if version else f"{tool} skipped: not installed")
    cases = [
        trappath.baseline_case(progs, calls),
        *trappath.raw_cases(progs, calls, cpu),
        *trappath.uprobe_cases(progs, calls, cpu, _all_cpus()),
        *trappath.other_tool_cases(progs, slow, work, bpf.path),
    ]
    if slow != calls:
        cases.append(trappath.baseline_case(progs, slow))
    _say(f"trap path: {len(cases)} cases x {rep.runs} runs, pinning to CPU {cpu}")
    rep.trap = trappath.measure(cases, rep.runs, timeout=600, progress=_say)
    for r in rep.trap:
        for err in sorted(set(r.errors)):
            rep.notes.append(f"{r.case.name} [{r.case.placement}]: {err}")


@dataclass(frozen=True)
class Accounted:
    """One instrumented CLI case; `keep_gil` is the PyDLL experiment (hotpath_timing.py)."""

    label: str
    body: str
    options: tuple[str, ...]
    placement: str
    keep_gil: bool = False


COUNT = "{ @c = count(); }"
PRINTF = '{ printf("%d\\n", arg0); }'
TO_NULL = ("-o", "/dev/null")
ACCOUNTED = (
    Accounted("count()", COUNT, (), "unpinned"),
    Accounted("count()", COUNT, (), "pinned"),
    Accounted("printf to /dev/null", PRINTF, TO_NULL, "unpinned"),
    Accounted("printf to /dev/null", PRINTF, TO_NULL, "unpinned", keep_gil=True),
    Accounted("count()", COUNT, (), "unpinned", keep_gil=True),
)


def _accounted_run(progs: Programs, calls: int, case: Accounted) -> Accounting:
    """One instrumented CLI run (bench/hotpath_timing.py) turned into per-hit steps."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [sys.executable, str(BENCH_DIR / "hotpath_timing.py"),
                *(["--keep-gil"] if case.keep_gil else []), out.name, "-q",
                *case.options, "-e", f"uprobe:{progs.target}:bench_fn {case.body}",
                "-c", f"{progs.target} {calls}"]
        if case.placement == "pinned":
            argv = ["taskset", "-c", str(_cpu()), *argv]
        done = run(argv, 600, cwd=str(BENCH_DIR.parent))
        problem = None if case.options else trappath.CLI_COUNT(done, calls)
        if problem:
            raise RunFailed(problem)
        period = loop_ns(done, calls) / calls / 1000
        data = json.loads(Path(out.name).read_text())
    steps = []
    timed = 0.0
    for name, (n, ns) in data["steps"].items():
        timed += ns / calls / 1000
        if n >= calls / 100:  # set-up-only requests (a few in the whole run) stay out
            steps.append((name, n / calls, ns / calls / 1000))
    steps.append(("rest: engine Python (dispatch, lookup, resume) + wrappers", 1.0,
                  period - timed))
    name = f"{case.label}, {case.placement}" + (
        ", EXPERIMENT: ptrace through PyDLL (GIL kept)" if case.keep_gil else "")
    return Accounting(name, period, steps, data["wrapper_ns"] / 1000)


def accounting(rep: Report, progs: Programs, calls: int) -> None:
    """Each instrumented case up to 3 times, interleaved; the run with the median hit
    period is shown whole (steps of one run add up; medians per step would not)."""
    rounds = min(rep.runs, 3)
    found: list[list[Accounting]] = [[] for _ in ACCOUNTED]
    for _ in range(rounds):
        for i, case in enumerate(ACCOUNTED):
            try:
                found[i].append(_accounted_run(progs, calls, case))
            except RunFailed as e:
                rep.notes.append(f"hot-path accounting, {case.label} [{case.placement}]: {e}")
    for runs in found:
        if runs:
            runs.sort(key=lambda a: a.period_us)
            median = runs[len(runs) // 2]
            others = ", ".join(f"{a.period_us:.1f}" for a in runs)
            rep.accounting.append(Accounting(f"{median.label} (median of periods {others} us)",
                                             median.period_us, median.steps, median.wrapper_us))


def start_up(rep: Report, progs: Programs, events: int) -> None:
    rep.interpreter_s = startup.interpreter_start(rep.runs)
    rep.dry_run_s = startup.dry_run_start(progs.target, rep.runs)
    firsts = [startup.first_probe_spawned(progs.target) for _ in range(rep.runs)]
    rep.first_probe_s = sorted(firsts)[len(firsts) // 2]
    rep.resolve = startup.resolve_only(startup.MASS_PATTERNS)
    rep.attaches = [startup.attach_cycle(startup.MASS_PATTERNS) for _ in range(min(rep.runs, 3))]
    rep.memory = startup.peak_memory(progs.target, events)


def section(rep: Report, name: str, fn: Callable[..., object], *args: object) -> None:
    """Run one part; a failure becomes a note instead of ending the whole benchmark."""
    _say(f"== {name}")
    try:
        fn(*args)
    except (RunFailed, OSError, ValueError, KeyError) as e:
        rep.notes.append(f"{name} failed: {e}")
        _say(f"   {name} failed: {e}")


def main() -> int:
    ap = argparse.ArgumentParser(description="uprobe benchmarks (issue #7); writes RESULTS.md")
    ap.add_argument("--quick", action="store_true", help="3 runs, 20,000 calls, 100,000 events")
    ap.add_argument("--runs", type=int, help="runs per case (default 5, quick 3)")
    ap.add_argument("--calls", type=int, help="calls per run (default 100000, quick 20000)")
    ap.add_argument("--events", type=int, help="events for peak memory (default 1000000)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get bpftrace or pip install py-spy when missing")
    ap.add_argument("--skip", action="append", default=[],
                    choices=("trap", "accounting", "costs", "profile", "startup"),
                    help="leave out a part (repeatable)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    calls = args.calls or (20_000 if args.quick else 100_000)
    events = args.events or (100_000 if args.quick else 1_000_000)
    install = not args.no_install
    command = "python3 bench/run.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    rep = Report(machine.describe(), command, runs, calls, machine.load())
    with tempfile.TemporaryDirectory(prefix="uprobe-bench-") as tmp:
        work = Path(tmp)
        try:
            progs = build(work)
        except BuildError as e:
            print(f"bench: {e}", file=sys.stderr)
            return 1
        rep.notes.append(f"probed instruction: bench_fn+0 `{progs.site_text}` "
                         f"({progs.site_len} bytes), the same copy-and-jump path for uprobe "
                         "and the raw C tracer")
        if "trap" not in args.skip:
            section(rep, "trap path", trap_path, rep, progs, work, calls, install)
        if "accounting" not in args.skip:
            section(rep, "hot-path accounting", accounting, rep, progs, calls)
        if "costs" not in args.skip:
            section(rep, "hot-path primitives", lambda: rep.costs.extend(
                hotpath_costs.measure(progs.ptrace_cost, calls)))
        if "profile" not in args.skip:
            section(rep, "profile", profiles, rep, progs, calls, install)
        if "startup" not in args.skip:
            section(rep, "start-up and memory", start_up, rep, progs, events)
    rep.load_after = machine.load()
    args.out.write_text(render(rep) + "\n")
    _say(f"wrote {args.out}")
    return 0


def profiles(rep: Report, progs: Programs, calls: int, install: bool) -> None:
    py_spy = hotpath_profile.ensure_py_spy(install)
    if py_spy is None:
        rep.notes.append("py-spy profile skipped: py-spy not installed (pip install py-spy)")
        return
    for placement in ("unpinned", "pinned"):
        rep.profiles.append(hotpath_profile.profile(py_spy, progs.target, calls, placement,
                                                    _cpu()))


if __name__ == "__main__":
    raise SystemExit(main())

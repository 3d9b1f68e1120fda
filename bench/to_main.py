"""Start-up as a user feels it, against bpftrace in the same run: time from launching the
tool until the `-c` program's main() runs, for one probe, 1,000 probes and all of libc;
`-l 'uprobe:libc:*'` and a dry run; and where uprobe's start-up goes (bench/phase_driver.py).

    python3 bench/to_main.py             # 7 runs of each, writes its section of RESULTS.md
    python3 bench/to_main.py --quick     # one run of a small set, prints only (a smoke run)

The program writes CLOCK_MONOTONIC at the top of main() into a file; the harness takes
time.monotonic_ns() (the same clock) just before it starts the tool. Runs of uprobe and
bpftrace are interleaved so that both see the same load; the report gives medians and
ratios, and the load average. uprobe runs with compiled bytecode as an installed copy
would (PYTHONDONTWRITEBYTECODE is dropped; the first, unmeasured, run writes the .pyc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

BPFTRACE = "/usr/bin/bpftrace"
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
PHASES = ("interpreter", "imports", "parse", "spawn", "resolve", "place")
LAUNCH_NS = "{launch_ns}"  # in an argv: replaced by the launch time, just before it
SECTION = "## Start-up to main(), against bpftrace (bench/to_main.py)"


class RunFailed(Exception):
    """A run failed or miscounted; one line for the report."""


def program_source(functions: int) -> str:
    """A main() that stamps the time first, then calls each of `functions` functions once
    (so a count of hits proves every probe was in)."""
    fns = "\n".join(
        f"__attribute__((noinline)) void probe_fn_{i}(void) {{ sink += {i}; }}"
        for i in range(functions))
    calls = "\n".join(f"    probe_fn_{i}();" for i in range(functions))
    return f"""#include <stdio.h>
#include <time.h>
volatile long sink;
{fns}
int main(int argc, char **argv) {{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    fprintf(f, "%lld\\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    fclose(f);
{calls}
    return 0;
}}
"""


def build(workdir: Path, functions: int) -> Path:
    src, exe = workdir / "to_main.c", workdir / "to_main"
    src.write_text(program_source(functions))
    out = subprocess.run(["gcc", "-O1", "-o", str(exe), str(src)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RunFailed(f"gcc: {out.stderr.strip()[:300]}")
    return exe


def uprobe_argv(*args: str) -> list[str]:
    """This checkout's CLI as the console script runs it (never an installed copy)."""
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); "
            "from uplang.cli import main; sys.exit(main())", *args]


def tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["BPFTRACE_MAX_PROBES"] = "100000"  # bpftrace refuses more than 512 by default
    return env


def _memlock() -> None:
    # bpftrace's maps are locked memory; its default RLIMIT warning would add noise.
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (8192 * 1024, 8192 * 1024))


@dataclass(frozen=True)
class Launch:
    to_main: float | None  # None: the command has no main() to stamp
    wall: float
    stdout: str
    stderr: str


def launch(argv: list[str], stamp: Path | None, timeout: float = 300) -> Launch:
    """Run `argv` to its end; seconds from just before the start until the stamp.
    `{launch_ns}` in `argv` becomes that start (time.monotonic_ns())."""
    if stamp is not None and stamp.exists():
        stamp.unlink()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic_ns()
        argv = [a.replace(LAUNCH_NS, str(start)) for a in argv]
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=tool_env(), cwd=str(REPO), start_new_session=True,
                                preexec_fn=_memlock)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RunFailed(f"{argv[0]} timed out after {timeout:.0f} s") from None
        wall = (time.monotonic_ns() - start) / 1e9
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RunFailed(f"{' '.join(argv[-4:])} exited {proc.returncode}: {stderr.strip()[-300:]}")
    to_main = None
    if stamp is not None:
        if not stamp.exists():
            raise RunFailed(f"{' '.join(argv[-4:])}: main() never ran")
        to_main = (int(stamp.read_text()) - start) / 1e9
    return Launch(to_main, wall, stdout, stderr)


def count_is(expected: int | None) -> Callable[[Launch], str | None]:
    """`@c: N` in the output (both tools print it so); None accepts any count."""
    def check(run: Launch) -> str | None:
        for line in (run.stdout + run.stderr).splitlines():
            if line.startswith("@c: "):
                got = int(line[4:])
                if expected is None or got == expected:
                    return None
                return f"counted {got}, expected {expected}"
        return "no @c line"
    return check


@dataclass
class Case:
    """One command measured on both tools; `times` per tool, in seconds."""

    label: str
    argv: dict[str, list[str]]
    stamp: Path | None
    check: Callable[[Launch], str | None] | None = None
    # bpftrace 0.17 takes ~0.14 s per uprobe to exit (detaching): with 1,000 probes a run
    # lasts minutes, so mass cases run it once (None: not at all, see `note`).
    bpftrace_runs: int | None = 0
    note: str = ""
    times: dict[str, list[float]] = field(default_factory=dict)

    def runs_of(self, tool: str, runs: int) -> int:
        if tool == "uprobe" or self.bpftrace_runs == 0:
            return runs
        return min(runs, self.bpftrace_runs or 0)

    def measure(self, tool: str) -> None:
        run = launch(self.argv[tool], self.stamp)
        problem = self.check(run) if self.check is not None else None
        if problem:
            raise RunFailed(f"{self.label} ({tool}): {problem}")
        value = run.to_main if run.to_main is not None else run.wall
        self.times.setdefault(tool, []).append(value)

    def median(self, tool: str) -> float:
        return statistics.median(self.times[tool])


def cases(exe: Path, functions: int, stamp: Path, libc: bool) -> list[Case]:
    probe_all = "probe_fn_*"
    one = "{ @c = count(); }"
    run_c = ["-c", f"{exe} {stamp}"]
    found = [
        Case("one probe, `-c` to main()",
             {"uprobe": uprobe_argv("-e", f"uprobe:{exe}:probe_fn_0 {one}", *run_c),
              "bpftrace": [BPFTRACE, "-e", f"uprobe:{exe}:probe_fn_0 {one}", *run_c]},
             stamp, count_is(1)),
        Case(f"{functions:,} probes (`probe_fn_*`), `-c` to main()",
             {"uprobe": uprobe_argv("-e", f"uprobe:{exe}:{probe_all} {one}", *run_c),
              "bpftrace": [BPFTRACE, "-e", f"uprobe:{exe}:{probe_all} {one}", *run_c]},
             stamp, count_is(functions), bpftrace_runs=1 if functions > 100 else 0),
    ]
    if libc:
        # The jump path (in-target code compiled with llvmlite) is the default where a site
        # allows it; --trap shows what the compile and the injection add to one probe.
        found.insert(1, Case(
            "one probe with `--trap`, `-c` to main()",
            {"uprobe": uprobe_argv("--trap", "-e", f"uprobe:{exe}:probe_fn_0 {one}", *run_c),
             "bpftrace": [BPFTRACE, "-e", f"uprobe:{exe}:probe_fn_0 {one}", *run_c]},
            stamp, count_is(1)))
        found.append(Case(
            "all of libc (`uprobe:libc:*`), `-c` to main()",
            {"uprobe": uprobe_argv("-e", f"uprobe:libc:* {one}", *run_c),
             "bpftrace": [BPFTRACE, "-e", f"uprobe:{LIBC}:* {one}", *run_c]},
            stamp, count_is(None), bpftrace_runs=None,
            note="bpftrace not run: tried once by hand on this machine, it stopped with "
                 "`Error attaching probe: ...:pthread_spin_lock@GLIBC_2.2.5` and exit "
                 "status 255, 156 s after launch, main() never ran"))
        found.append(Case(
            "`-l 'uprobe:libc:*'` (to exit)",
            {"uprobe": uprobe_argv("-l", "uprobe:libc:*"),
             "bpftrace": [BPFTRACE, "-l", f"uprobe:{LIBC}:*"]}, None))
    found.append(Case(
        "dry run of one probe (to exit; bpftrace: `--emit-elf`)",
        {"uprobe": uprobe_argv("--dry-run", "-e", f"uprobe:libc:malloc {one}"),
         "bpftrace": [BPFTRACE, "--emit-elf", str(stamp.with_suffix(".elf")), "-e",
                      f"uprobe:{LIBC}:malloc {one}"]}, None))
    return found


def breakdown(exe: Path, stamp: Path, script: str, runs: int) -> dict[str, float]:
    """Median of each phase of uprobe's start-up (bench/phase_driver.py) for `script` on
    `exe`, plus `other` (the rest until main: resuming the program, ld.so, libc init)."""
    rows: list[dict[str, float]] = []
    for _ in range(runs):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            argv = [sys.executable, str(BENCH_DIR / "phase_driver.py"), str(REPO),
                    LAUNCH_NS, out.name, "--",
                    "-e", script, "-c", f"{exe} {stamp}"]
            run = launch(argv, stamp)
            figures = json.loads(Path(out.name).read_text())
        assert run.to_main is not None
        figures["to_main"] = run.to_main
        figures["other"] = run.to_main - sum(figures.get(p, 0.0) for p in PHASES)
        rows.append(figures)
    return {k: statistics.median(r.get(k, 0.0) for r in rows)
            for k in (*PHASES, "other", "to_main")}


@dataclass
class Report:
    runs: int
    functions: int
    loads: list[float]
    cases: list[Case]
    phases: dict[str, dict[str, float]]
    bpftrace: str

    def render(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        lines = [
            SECTION, "",
            f"{when}, {self.bpftrace}, medians of {self.runs} interleaved runs; "
            f"1-minute load average {min(self.loads):.1f}-{max(self.loads):.1f} on "
            f"{os.cpu_count()} CPUs (a shared machine: compare the ratios, which are "
            f"taken in the same run, more than the absolute times).",
            "",
            "| command | uprobe (s) | bpftrace (s) | uprobe / bpftrace |",
            "|---|---:|---:|---:|",
        ]
        notes = []
        for case in self.cases:
            up = case.median("uprobe")
            if "bpftrace" not in case.times:
                lines.append(f"| {case.label} | {up:.3f} | - | - |")
                notes.append(f"{case.label}: {case.note}")
                continue
            bt = case.median("bpftrace")
            runs = len(case.times["bpftrace"])
            once = f" ({runs} run{'s' if runs > 1 else ''})" if runs < self.runs else ""
            lines.append(f"| {case.label} | {up:.3f} | {bt:.3f}{once} | {up / bt:.2f} |")
        lines += [""] + [f"- {n}" for n in notes] if notes else []
        lines += ["", "Where uprobe's time to main() goes (bench/phase_driver.py, medians; "
                  "`other` = resuming the program, ld.so and libc start-up, the engine's "
                  "wait loop):", ""]
        labels = list(self.phases)
        lines.append("| phase | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---:|" * len(labels))
        for phase in (*PHASES, "other", "to_main"):
            cells = " | ".join(f"{self.phases[k][phase]:.3f}" for k in labels)
            lines.append(f"| {phase.replace('_', ' ')} | {cells} |")
        return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace this harness's section of RESULTS.md (or append it), leaving the rest."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if SECTION in old:
        head, rest = old.split(SECTION, 1)
        after = rest.find("\n## ")
        tail = rest[after + 1:] if after >= 0 else ""
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def measure(runs: int, functions: int, libc: bool, workdir: Path,
            phase_runs: int) -> Report:
    if not shutil.which(BPFTRACE):
        raise RunFailed(f"{BPFTRACE} is not installed")
    exe = build(workdir, functions)
    stamp = workdir / "main.stamp"
    found = cases(exe, functions, stamp, libc)
    for case in found if runs > 1 else ():  # unmeasured: writes the .pyc, warms the cache
        launch(case.argv["uprobe"], case.stamp)
        if case.runs_of("bpftrace", runs) == runs:
            launch(case.argv["bpftrace"], case.stamp)
    loads = [os.getloadavg()[0]]
    for i in range(runs):
        for case in found:
            for tool in ("uprobe", "bpftrace"):
                if i < case.runs_of(tool, runs):
                    case.measure(tool)
        loads.append(os.getloadavg()[0])
    phases = {
        "one probe": breakdown(exe, stamp, f"uprobe:{exe}:probe_fn_0 {{ @c = count(); }}",
                               phase_runs),
        f"{functions:,} probes": breakdown(
            exe, stamp, f"uprobe:{exe}:probe_fn_* {{ @c = count(); }}", phase_runs),
    }
    if libc:
        phases["all of libc"] = breakdown(exe, stamp, "uprobe:libc:* { @c = count(); }",
                                          phase_runs)
    version = subprocess.run([BPFTRACE, "--version"], capture_output=True, text=True)
    return Report(runs, functions, loads, found, phases, version.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--functions", type=int, default=1000)
    ap.add_argument("--quick", action="store_true",
                    help="one run, 20 functions, no libc, nothing written")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.functions = 1, 20
    with tempfile.TemporaryDirectory(prefix="to_main.") as tmp:
        try:
            report = measure(args.runs, args.functions, not args.quick, Path(tmp),
                             1 if args.quick else args.runs)
        except RunFailed as exc:
            print(f"to_main: {exc}", file=sys.stderr)
            return 1
    text = report.render()
    print(text, end="")
    if not args.quick:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

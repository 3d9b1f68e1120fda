"""System-wide probes: what a probed exec costs, and what the watching costs processes
that are not traced. Not part of the test suite; needs root (fanotify).

    python3 bench/systemwide.py [--execs 200] [--runs 3]

A shell loop execs a program N times; its wall time per exec is measured without uprobe
(the baseline, same run) and with `uprobe` watching system-wide:
- probed:    the program itself is probed (`uprobe:PROG:main`): permission event, seize,
             exec stop, rendezvous hook, placement at the entry, detach at exit;
- unprobed:  a copy of the program (another inode, no mark) while uprobe watches the first;
- filtered:  a program loading a probed library, left alone by `--comm`: it pays the
             permission round trip of its library open only.
Runs are interleaved; medians are reported with the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPROBE = [sys.executable, "-m", "uplang.cli"]
LIB_SOURCE = "int lib_fn(int x) { return x + 1; }\n"
LIB_MAIN = "int lib_fn(int);\nint main(void) { return lib_fn(1) == 2 ? 0 : 1; }\n"


def build(work: Path) -> dict[str, Path]:
    prog = work / "probed"
    subprocess.run(["gcc", "-O2", "-o", str(prog), str(ROOT / "bench" / "target.c")],
                   check=True)
    other = work / "unprobed"
    shutil.copy(prog, other)
    (work / "lib.c").write_text(LIB_SOURCE)
    (work / "main.c").write_text(LIB_MAIN)
    lib = work / "libbench.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(work / "lib.c")],
                   check=True)
    user = work / "libuser"
    subprocess.run(["gcc", "-O2", "-o", str(user), str(work / "main.c"), str(lib),
                    f"-Wl,-rpath,{work}"], check=True)
    return {"probed": prog, "unprobed": other, "lib": lib, "libuser": user}


def loop_ns(argv: list[str], n: int) -> float:
    """Wall time per run of `argv` in a shell loop of n runs."""
    cmd = " ".join(argv)
    script = f'i=0; while [ $i -lt {n} ]; do {cmd} >/dev/null || exit 9; i=$((i+1)); done'
    start = time.perf_counter_ns()
    subprocess.run(["sh", "-c", script], check=True)
    return (time.perf_counter_ns() - start) / n


class Watching:
    """uprobe running system-wide until stop(); its output parsed at the end."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([*UPROBE, *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        if not line.startswith("Attached"):
            self.proc.kill()
            raise SystemExit(f"uprobe did not start: {line}{self.proc.stderr.read()}")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=300)
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execs", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (fanotify permission events)", file=sys.stderr)
        return 2
    n = opts.execs
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        p = build(Path(tmp))
        cases = {
            "probed": ([str(p["probed"]), "0"],
                       ("-e", f"uprobe:{p['probed']}:main {{ @runs = count(); }}")),
            "unprobed": ([str(p["unprobed"]), "0"],
                         ("-e", f"uprobe:{p['probed']}:main {{ @runs = count(); }}")),
            "filtered": ([str(p["libuser"])],
                         ("--comm", "nobody", "-e",
                          f"uprobe:{p['lib']}:lib_fn {{ @calls = count(); }}")),
        }
        for _ in range(opts.runs):
            for name, (argv, args) in cases.items():
                results.setdefault(f"{name} base", []).append(loop_ns(argv, n))
                tool = Watching(*args)
                try:
                    results.setdefault(name, []).append(loop_ns(argv, n))
                finally:
                    out = tool.stop()
                if name == "probed" and f"@runs: {n}" not in out:
                    raise SystemExit(f"probed runs not all counted: {out!r}")
                if name == "filtered" and "@calls" in out:
                    raise SystemExit(f"a filtered process was traced: {out!r}")
    print("| case | execs | without uprobe (ms/exec) | with uprobe (ms/exec) | added (ms/exec) "
          "| ratio |  runs |\n|---|---:|---:|---:|---:|---:|---:|")
    for name in cases:
        base = statistics.median(results[f"{name} base"]) / 1e6
        with_ = statistics.median(results[name]) / 1e6
        print(f"| {name} | {n} | {base:.3f} | {with_:.3f} | {with_ - base:+.3f} | "
              f"{with_ / base:.2f}x | {opts.runs} |")
    print(f"\nload (1 min) after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

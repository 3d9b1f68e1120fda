"""Per-hit cost of `@[ustack] = count()`: the uprobe CLI on a target that calls bench_fn
from DEPTH frames down (bench/stack_target.c, -O2 -fomit-frame-pointer: CFI unwinding),
against `@c = count()` (one trap, rip-only fast path) and a clause that reads the
registers (one trap with GETREGS, as ustack needs) on the same target in the same run. Also, in-process, the unwind alone of one stopped thread: time and stack reads per
unwind, with the CFI tables warm.

    python3 bench/ustack_cost.py [-n CALLS] [--depths 1,10,30] [--rounds 3]

Reported per hit (us): the target's own loop time / CALLS, median of the rounds; the
ratio is against the baseline at the same depth.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import RunFailed, loop_ns, run
from programs import BENCH_DIR

ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

from runtime.resolve import resolve_uprobe  # noqa: E402
from runtime.session import Session  # noqa: E402
from runtime.unwind.stackmem import StackMemory  # noqa: E402
from runtime.unwind.unwinder import regs_of  # noqa: E402

CASES = {
    "@c = count()": "uprobe:{t}:bench_fn {{ @c = count(); }}",
    # The registers read at the hit, as ustack needs them, but no stack.
    "@[reg(\"sp\") & 0] = count()": 'uprobe:{t}:bench_fn {{ @[reg("sp") & 0] = count(); }}',
    "@[ustack] = count()": "uprobe:{t}:bench_fn {{ @[ustack] = count(); }}",
    "@[ustack(perf)] = count()": "uprobe:{t}:bench_fn {{ @[ustack(perf)] = count(); }}",
}


def build(out_dir: Path) -> Path:
    out = out_dir / "stack_target"
    subprocess.run(["gcc", "-O2", "-g", "-fomit-frame-pointer", "-fcf-protection=none", "-o",
                    str(out), str(BENCH_DIR / "stack_target.c")], check=True)
    return out


def per_hit_us(target: Path, script: str, calls: int, depth: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "uplang.cli", "-q", "-o", os.devnull, "-e",
            script.format(t=target), "-c", f"{target} {calls} {depth}"]
    outcome = run(argv, timeout=600, env=env, cwd=str(ROOT))
    if outcome.returncode != 0:
        raise RunFailed(outcome.stderr.strip()[-300:])
    return loop_ns(outcome, calls) / calls / 1000


def unwind_alone(target: Path, depth: int, n: int) -> tuple[float, float, int]:
    """(us per unwind, stack reads per unwind, frames) for one stopped thread."""
    with open(os.devnull, "w") as devnull:
        s = Session.spawn([str(target), "3", str(depth)], stdout=devnull)
    result: list[tuple[float, float, int]] = []

    def hit(ctx) -> None:
        if result:
            return
        stacks = ctx.session.stacks
        proc = ctx.thread.proc
        snap = stacks.snapshot(proc.pid, proc.maps_generation, ctx.regs.rip)
        regs = regs_of(ctx.regs)
        frames = stacks.unwinder.walk(regs, StackMemory(proc.mem, ctx.regs.rsp), snap, 127)
        reads = 0
        # Thread CPU time: the machine may be busy, the figure is the tracer's own work.
        t = time.thread_time_ns()
        for _ in range(n):
            mem = StackMemory(proc.mem, ctx.regs.rsp)
            stacks.unwinder.walk(regs, mem, snap, 127)
            reads += mem.reads
        result.append(((time.thread_time_ns() - t) / n / 1000, reads / n, len(frames)))

    for placement in resolve_uprobe(str(target), "bench_fn", pid=s.pid):
        s.add_probe(placement, hit)
    try:
        s.run()
    finally:
        s.detach()
    return result[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3000, help="calls per run")
    ap.add_argument("--depths", default="1,10,30")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        target = build(Path(tmp))
        print(f"per hit, us (median of {args.rounds} interleaved rounds, {args.n} calls)")
        print(f"{'depth':>5}  " + "  ".join(f"{name:>26}" for name in CASES))
        for depth in depths:
            got: dict[str, list[float]] = {name: [] for name in CASES}
            for _ in range(args.rounds):
                for name, script in CASES.items():
                    got[name].append(per_hit_us(target, script, args.n, depth))
            med = {name: statistics.median(v) for name, v in got.items()}
            base = med["@c = count()"]
            cells = [f"{med[name]:7.1f} ({med[name] / base:5.2f}x)" for name in CASES]
            print(f"{depth:>5}  " + "  ".join(f"{c:>26}" for c in cells))
        print()
        print("unwind alone (tracer CPU time, tables warm): us per unwind, stack reads, frames")
        for depth in depths:
            us, reads, frames = unwind_alone(target, depth, 2000)
            print(f"{depth:>5}  {us:8.1f} us  {reads:4.1f} reads  {frames:3d} frames"
                  f"  ({us / frames:5.2f} us/frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

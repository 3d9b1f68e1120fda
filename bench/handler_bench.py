"""Per-hit cost of compiled handlers alone (no ptrace): ns per call with a fake context.

    python3 bench/handler_bench.py [-n CALLS]

Cases: count() into a scalar map, hist(arg0), printf to /dev/null (queued effect run
inline here, so the number is capture + formatting + write), and a false predicate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.handlers.compiler import compile_plan  # noqa: E402
from runtime.handlers.emit import Emitter  # noqa: E402
from runtime.handlers.support import HandlerSupport  # noqa: E402
from runtime.maps import MapStore  # noqa: E402
from runtime.output.printf import PrintfFormat  # noqa: E402
from uplang.parser import parse  # noqa: E402
from uplang.plan import Plan, PlanClause, PlanProbe  # noqa: E402

CASES = {
    "count()": "uprobe:p:f { @c = count(); }",
    "@[tid] = count()": "uprobe:p:f { @c[tid] = count(); }",
    "hist(arg0)": "uprobe:p:f { @h = hist(arg0); }",
    "printf to /dev/null": 'uprobe:p:f { printf("%d %s\\n", arg0, comm); }',
    "false predicate": "uprobe:p:f /arg0 == 12345/ { @c = count(); }",
}


class BenchContext:
    """The attributes a HitContext offers, as plain values."""

    pid = 100
    tid = 101
    comm = "bench"
    nsecs = 1
    cpu = 0
    retval = 0

    def __init__(self, inline: bool) -> None:
        self.inline = inline
        self.queued: list = []

    def arg(self, n: int) -> int:
        return 1000 + n

    def defer(self, fn) -> None:
        if self.inline:
            fn()
        else:
            self.queued.append(fn)


def handler_for(text: str, out) -> object:
    prog = parse(text, "bench.up")
    clause = prog.clauses[0]
    plan = Plan((PlanProbe(0, 0, "uprobe", "uprobe:p:f"),),
                (PlanClause(0, (0,), clause.predicate, clause.body),))
    support = HandlerSupport(MapStore(), Emitter("text", out, out), stop=lambda: None)
    return compile_plan(plan, support, PrintfFormat.parse)[0].handler


def measure(handler, ctx: BenchContext, n: int) -> float:
    for _ in range(1000):
        handler(ctx)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        handler(ctx)
    return (time.perf_counter_ns() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=200_000)
    n = ap.parse_args().n
    with open("/dev/null", "w") as devnull:
        for name, text in CASES.items():
            handler = handler_for(text, devnull)
            at_hit = measure(handler, BenchContext(inline=False), n)
            total = measure(handler, BenchContext(inline=True), n)
            print(f"{name:24s} at the hit {at_hit:8.0f} ns   with its effects {total:8.0f} ns")


if __name__ == "__main__":
    main()

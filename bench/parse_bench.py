"""Benchmark (not a test): parse, check and plan a generated 1,000-clause script.

    python3 bench/parse_bench.py [--clauses N] [--repeat R]

Prints the best of R runs for each stage, and the per-clause cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uplang.checks import CheckOptions, check  # noqa: E402
from uplang.grammar_loader import lalr_parser  # noqa: E402
from uplang.parser import parse  # noqa: E402
from uplang.planner import build_plan  # noqa: E402
from uplang.planprint import format_plan  # noqa: E402

# Clause shapes that together touch most of the grammar and most of the checks.
SHAPES = [
    'uprobe:libc:malloc{i} /arg0 > {i} && comm == "bash"/ {{ @sizes{i} = hist(arg0); '
    "@calls{i}[comm, tid] = count(); self->ts{i} = nsecs; }}",
    "uretprobe:libc:malloc{i} /self->ts{i}/ {{ @lat{i} = lhist(nsecs - self->ts{i}, 0, 1000, "
    "10); self->ts{i} = 0; }}",
    "uprobe:/usr/bin/prog:handler_{i}+0x10 {{ $r = (struct Req *)arg0; if ($r->id > {i}) {{ "
    'printf("%d %s\\n", $r->id, $r->name); }} else {{ @small{i}++; }} }}',
    "usdt:/usr/bin/prog:app:event_{i} {{ $i = 0; while ($i < 8) {{ $i++; }} "
    "@events{i}[arg0 % 16] = sum(arg1); }}",
    "interval:ms:{i} {{ print(@sizes{j}); clear(@sizes{j}); }}",
]
PRELUDE = "config = { max_strlen = 64; }\nstruct Req { int32 id; char name[16]; };\n"


def script(clauses: int) -> str:
    lines = [PRELUDE]
    for n in range(clauses):
        i = n + 1
        # interval clauses print a hist map written by an earlier uprobe clause
        j = (n // len(SHAPES)) * len(SHAPES) + 1
        lines.append(SHAPES[n % len(SHAPES)].format(i=i, j=j))
    return "\n".join(lines) + "\n"


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clauses", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    text = script(args.clauses)

    start = time.perf_counter()
    lalr_parser()
    table_s = time.perf_counter() - start
    parse_s, program = best(lambda: parse(text, "bench.up"), args.repeat)
    opts = CheckOptions(has_process=True, has_command=True, params=())
    check_s, result = best(lambda: check(program, opts, text), args.repeat)
    plan_s, plan = best(lambda: build_plan(program, result), args.repeat)
    print_s, _ = best(lambda: format_plan(plan), args.repeat)

    total = parse_s + check_s + plan_s
    print(f"script: {args.clauses} clauses, {len(text.splitlines())} lines, {len(text)} bytes")
    print(f"  LALR tables (once per process) {table_s * 1e3:8.1f} ms")
    print(f"  parse                          {parse_s * 1e3:8.1f} ms")
    print(f"  check                          {check_s * 1e3:8.1f} ms")
    print(f"  plan                           {plan_s * 1e3:8.1f} ms")
    print(f"  parse+check+plan               {total * 1e3:8.1f} ms "
          f"({total / args.clauses * 1e6:.0f} us per clause)")
    print(f"  --dry-run printout             {print_s * 1e3:8.1f} ms")
    print(f"  plan: {len(plan.probes)} probes, {len(plan.maps)} maps")
    return 0


if __name__ == "__main__":
    sys.exit(main())

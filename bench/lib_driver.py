"""uprobe through the library API, no front end: a plain Python closure as the handler.

    python3 bench/lib_driver.py [--pin-tracer CPU] [--kind entry|return] PROG N

Measures the runtime alone (Session + engine); the CLI's number minus this one is what the
handler compiler and executor add per hit. `--pin-tracer` pins only the tracer thread,
after the spawn, so the target keeps the affinity it was started with. Prints the target's
own line, then `count HITS` on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.resolve import resolve_uprobe  # noqa: E402
from runtime.session import Session  # noqa: E402


class Counter:
    """The cheapest useful handler: one attribute increment per hit."""

    __slots__ = ("hits",)

    def __init__(self) -> None:
        self.hits = 0

    def __call__(self, ctx: object) -> None:
        self.hits += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pin-tracer", type=int, default=None, metavar="CPU")
    ap.add_argument("--kind", choices=("entry", "return"), default="entry")
    ap.add_argument("--function", default="bench_fn")
    ap.add_argument("prog")
    ap.add_argument("calls")
    args = ap.parse_args()
    prog = os.path.abspath(args.prog)
    placement = resolve_uprobe(prog, args.function, want_return=args.kind == "return")[0]
    session = Session.spawn([prog, args.calls])
    if args.pin_tracer is not None:
        # pid 0 is the calling thread only: the tracer; the target was forked already.
        os.sched_setaffinity(0, {args.pin_tracer})
    counter = Counter()
    session.add_probe(placement, counter, kind=args.kind)
    session.run()
    sys.stdout.flush()
    print(f"count {counter.hits}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

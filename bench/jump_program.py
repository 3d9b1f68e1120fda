"""The jump path's in-target program, measured without trampolines or ptrace.

tests/programs/jump_harness.c maps the compiled bytes and the shared area and calls the
entries from N threads in a loop, as a trampoline would. Per-call costs are the harness's
wall time per call minus its empty loop's, measured in the same run (interleaved, medians).
The drain case runs printf on every call and drains the ring into a file from this process
with the user-side code, counting records per second end to end.

    PYTHONPATH=. python3 bench/jump_program.py [--calls N] [--runs R]
"""

from __future__ import annotations

import argparse
import io
import mmap
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.handlers.emit import Emitter  # noqa: E402
from runtime.handlers.support import HandlerSupport  # noqa: E402
from runtime.jump.program import build_program  # noqa: E402
from runtime.jump.reader import JumpReader, compile_user_side  # noqa: E402
from runtime.maps import MapStore  # noqa: E402
from runtime.output.printf import PrintfFormat  # noqa: E402
from uplang.planner import compile_script  # noqa: E402

CASES = [
    ("count()", "hit", "uprobe:x:f { @c = count(); }"),
    ("@[tid] = count()", "hit", "uprobe:x:f { @[tid] = count(); }"),
    ("hist(arg0) + sum + predicate", "hit",
     "uprobe:x:f /arg1 >= 0/ { @h = hist(arg0); @s = sum(arg2); }"),
    ("uretprobe hist(retval)", "ret", "uretprobe:x:f { @h = hist(retval); }"),
    ("entry+return latency hist (self->ts = nsecs)", "ret",
     "uprobe:x:f { self->ts = nsecs; } uretprobe:x:f { @h = hist(nsecs - self->ts); }"),
]


class Area:
    def __init__(self, script: str, ring: int = 1 << 16) -> None:
        self.plan = compile_script(script)
        self.prog = build_program(self.plan, ring_records=ring)
        self.fd = os.memfd_create("jump-bench")
        os.ftruncate(self.fd, self.prog.shm_size)
        self.mm = mmap.mmap(self.fd, self.prog.shm_size)
        with memoryview(self.mm) as v:
            self.prog.init_shm(v)
            clauses = tuple(self.prog.program.clause_bits)
            self.prog.add_site(v, 0, clauses)
            self.prog.add_site(v, 1, clauses)
        self.code = Path(tempfile.mkstemp(suffix=".bin")[1])
        self.code.write_bytes(self.prog.code)

    def argv(self, exe: Path, mode: str, threads: int, calls: int) -> list[str]:
        e = self.prog.entries
        return [str(exe), str(self.code), str(self.fd), str(e["jp_hit"]),
                str(e["jp_ret_enter"]), str(e["jp_ret_exit"]), mode, str(threads), str(calls)]

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)
        self.code.unlink()


def ns_per_call(exe: Path, area: Area, mode: str, threads: int, calls: int) -> float:
    out = subprocess.run(area.argv(exe, mode, threads, calls), pass_fds=(area.fd,),
                         capture_output=True, text=True, check=True).stdout
    return float(out.split("ns_per_call=")[1].split()[0])


def drain_rate(exe: Path, threads: int, calls: int) -> tuple[float, float, int, int]:
    """printf on every call from `threads` threads, drained into a file: (events per wall
    second, events per second of the drain thread's CPU time, lines, lost). On a loaded
    machine the second says what the drain can do when it has a CPU."""
    area = Area('uprobe:x:f { printf("%d %d\\n", arg1, arg0); }', ring=1 << 14)
    with tempfile.TemporaryFile("w+") as f:
        store = MapStore(area.plan.maps)
        support = HandlerSupport(store, Emitter("text", f, io.StringIO()), stop=lambda: None)
        reader = JumpReader(area.prog, area.mm, store,
                            compile_user_side(area.prog, support, PrintfFormat.parse))
        done = threading.Event()
        cpu = [0.0]

        def loop() -> None:
            c0 = time.thread_time()
            while not done.is_set():
                if not reader.drain():
                    done.wait(0.0002)
            reader.drain()
            cpu[0] = time.thread_time() - c0

        t0 = time.monotonic()
        p = subprocess.Popen(area.argv(exe, "hit", threads, calls), pass_fds=(area.fd,),
                             stdout=subprocess.PIPE)
        t = threading.Thread(target=loop)
        t.start()
        p.communicate()
        done.set()
        t.join()
        elapsed = time.monotonic() - t0
        lost = reader.lost
        reader.release()
        f.flush()
        f.seek(0)
        lines = sum(1 for _ in f)
    area.close()
    return lines / elapsed, lines / max(cpu[0], 1e-9), lines, lost


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--events", type=int, default=1_000_000)
    opts = ap.parse_args()
    exe = Path(tempfile.mkdtemp()) / "jump_harness"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe),
                    str(ROOT / "tests" / "programs" / "jump_harness.c")], check=True)
    areas = [(name, mode, Area(script)) for name, mode, script in CASES]
    base: list[float] = []
    per: dict[str, list[float]] = {name: [] for name, _, _ in areas}
    for _ in range(opts.runs):
        base.append(ns_per_call(exe, areas[0][2], "none", opts.threads, opts.calls))
        for name, mode, area in areas:
            per[name].append(ns_per_call(exe, area, mode, opts.threads, opts.calls))
    b = statistics.median(base)
    print("| case | mode | threads | ns/call (median) | minus empty loop | min..max |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| empty harness loop | none | {opts.threads} | {b:.1f} | 0 | "
          f"{min(base):.1f}..{max(base):.1f} |")
    for name, mode, area in areas:
        v = per[name]
        m = statistics.median(v)
        print(f"| {name} | {mode} | {opts.threads} | {m:.1f} | {m - b:.1f} | "
              f"{min(v):.1f}..{max(v):.1f} |")
        area.close()
    rate, cpu_rate, lines, lost = drain_rate(exe, 4, opts.events // 4)
    print(f"\nprintf drained to a file: {lines} lines from 4 threads, {lost} lost, "
          f"{rate / 1e6:.2f} M events/s wall, {cpu_rate / 1e6:.2f} M events per second of "
          "the drain thread's CPU (ring 16384 records, writers wait when full)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

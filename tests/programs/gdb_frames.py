"""Ground truth for stack tests: gdb's own frame list at a breakpoint, in batch mode.

gdb runs the program with ASLR off (its default); the tests run it under `setarch -R` so
that both see the same addresses. Each hit yields (pc, name, kind) per frame, innermost
first, kind being 'normal', 'inline', 'tailcall' or 'sigtramp'.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

_SCRIPT = r'''
import gdb, json
KINDS = {gdb.NORMAL_FRAME: "normal", gdb.INLINE_FRAME: "inline",
         gdb.TAILCALL_FRAME: "tailcall", gdb.SIGTRAMP_FRAME: "sigtramp"}
def dump_frames():
    out = []
    f = gdb.newest_frame()
    while f is not None:
        out.append([f.pc(), f.name(), KINDS.get(f.type(), "other")])
        f = f.older()
    print("FRAMES " + json.dumps(out), flush=True)
'''

GdbFrame = tuple[int, str, str]


def gdb_stacks(argv: list[str], breakpoint: str, hits: int, workdir: Path,
               timeout: float = 120) -> list[list[GdbFrame]]:
    """The frames at each of the first `hits` stops at `breakpoint`; signals pass
    through without stopping."""
    script = workdir / "gdb_frames.py"
    script.write_text(_SCRIPT)
    cmds = ["-ex", f"source {script}", "-ex", "set backtrace past-main on",
            "-ex", "set breakpoint pending on", "-ex", "set pagination off"]
    for sig in ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD"):
        cmds += ["-ex", f"handle {sig} nostop noprint pass"]
    cmds += ["-ex", f"break {breakpoint}", "-ex", "run"]
    for i in range(hits):
        cmds += ["-ex", "python dump_frames()"]
        if i + 1 < hits:
            cmds += ["-ex", "continue"]
    cmds += ["-ex", "kill"]
    done = subprocess.run(["gdb", "-q", "-batch", "-nx", *cmds, "--args", *argv],
                          capture_output=True, text=True, timeout=timeout, check=False)
    stacks = [[(int(pc), name or "", kind) for pc, name, kind in json.loads(line[7:])]
              for line in done.stdout.splitlines() if line.startswith("FRAMES ")]
    if len(stacks) != hits:
        raise AssertionError(f"gdb gave {len(stacks)} stacks, wanted {hits}:\n"
                             f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return stacks

"""A sampling profile of uprobe's hot path (py-spy, installed for the benchmark only).

py-spy samples the tracer thread without pausing it (--nonblocking, so the profile does
not slow the round trip it measures) and with idle samples kept (--idle), since most of a
hit is spent blocked in waitpid while the target runs and traps. Each sample's share of
the hot loop times the per-hit cost measured in the same run gives microseconds per hit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from measure import RunFailed, loop_ns, run
from trappath import CLI_COUNT, REPO, uprobe_cli

FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^:()]+):(?P<line>\d+)\)$")
HOT_LOOP = "Engine.run ("
HANDLER = ("handler (HitContext + compiled clause)", "Session._caller")
# ptrace requests are recognised by the leaf's source line, so that calls inlined into the
# engine (which names them by locals: `fast(getregs, ...)`) count as well as calls through
# runtime.ptrace_ops helpers.
REQUESTS = ("PTRACE_GETREGS", "PTRACE_SETREGS", "PTRACE_PEEKUSER", "PTRACE_POKEUSER",
            "PTRACE_CONT")


@dataclass(frozen=True)
class Line:
    """A leaf (function, file:line, source text) and its self time."""

    where: str
    source: str
    share: float
    us_per_hit: float


@dataclass(frozen=True)
class Profile:
    placement: str
    calls: int
    per_hit_us: float
    samples: int
    categories: list[tuple[str, float, float]]
    lines: list[Line]


def ensure_py_spy(install: bool) -> str | None:
    path = shutil.which("py-spy")
    if path is None and install:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"],
                       capture_output=True)
        path = shutil.which("py-spy")
    return path


def _source(file: str, line: int) -> str:
    path = REPO / file
    try:
        return path.read_text().splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return ""


def _category(stack: str, leaf: str) -> str:
    if HANDLER[1] in stack:
        return HANDLER[0]
    m = FRAME.match(leaf)
    src = _source(m["file"], int(m["line"])) if m else ""
    for request in REQUESTS:
        local = request.removeprefix("PTRACE_").lower()
        if re.search(rf"\b{request}\b|\bfast\({local}\b", src):
            return request
    if "waitpid(" in src:
        return "waitpid (blocked: target runs, traps, wakes us)"
    return "engine Python (dispatch, site lookup, resume)"


def analyse(raw: str, per_hit_us: float) -> tuple[int, list[tuple[str, float, float]], list[Line]]:
    """(hot samples, categories, top leaf lines) from py-spy's raw (collapsed) output."""
    cats: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for row in raw.splitlines():
        stack, _, count = row.rpartition(" ")
        if HOT_LOOP not in stack or not count.isdigit():
            continue
        n = int(count)
        leaf = stack.rsplit(";", 1)[-1].strip()
        total += n
        cats[_category(stack, leaf)] += n
        leaves[leaf] += n
    if not total:
        raise RunFailed("py-spy recorded no sample in the engine loop")
    categories = [(name, n / total, n / total * per_hit_us) for name, n in cats.most_common()]
    lines = []
    for leaf, n in leaves.most_common(12):
        m = FRAME.match(leaf)
        src = _source(m["file"], int(m["line"])) if m else ""
        lines.append(Line(leaf, src, n / total, n / total * per_hit_us))
    return total, categories, lines


def profile(py_spy: str, target: Path, calls: int, placement: str, cpu: int,
            rate: int = 500) -> Profile:
    """Profile the CLI running `count()` on `calls` calls, pinned or not."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "raw.txt"
        pin = ["taskset", "-c", str(cpu)] if placement == "pinned" else []
        argv = [py_spy, "record", "-o", str(out), "-f", "raw", "-r", str(rate), "--idle",
                "--nonblocking", "--", *pin, *uprobe_cli(), "-q", "-e",
                f"uprobe:{target}:bench_fn {{ @c = count(); }}", "-c", f"{target} {calls}"]
        done = run(argv, 120 + calls / 5000, cwd=str(REPO))
        problem = CLI_COUNT(done, calls)
        if problem:
            raise RunFailed(problem)
        per_hit = loop_ns(done, calls) / calls / 1000
        if not out.exists():
            raise RunFailed("py-spy wrote no profile: " + done.stderr.strip()[-160:])
        total, cats, lines = analyse(out.read_text(), per_hit)
    return Profile(placement, calls, per_hit, total, cats, lines)

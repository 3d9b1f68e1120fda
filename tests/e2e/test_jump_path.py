"""The jump path end to end: `uprobe` with its default placement (jumps where sites allow
them) on multi-threaded, recursive, longjmp-ing and C++ programs. Ground truth comes from
the programs themselves (counts, sums, return values they print) and from uninstrumented
runs; `-v` must say which path each site took and why."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
from e2e.conftest import UPROBE, Uprobe, uprobe_env

from runtime.aggregations import hist_index


@pytest.fixture(scope="module")
def threads(builder) -> Path:
    return builder.build("jump_threads.c", "-O2", "-pthread")


@pytest.fixture
def up(tmp_path: Path) -> Uprobe:
    return Uprobe(tmp_path)


def _map(out: str, name: str) -> dict[str, str]:
    """`@name[key]: value` lines of a printout."""
    found = {}
    for m in re.finditer(rf"^@{name}(?:\[(.*?)\])?: (.*)$", out, re.M):
        found[m.group(1) or ""] = m.group(2)
    return found


def test_eight_threads_exact_counts_hist_and_sums(up: Uprobe, threads: Path) -> None:
    n, calls = 8, 200_000
    script = (f"uprobe:{threads}:work {{ @c = count(); @s = sum(arg0); "
              "@per[arg1] = count(); @h = hist(arg0 % 1000); }")
    r = up.run("-v", "-e", script, "-c", f"{threads} {n} {calls}", timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{threads}:work: {threads} file offset" in r.stderr
    assert ": jump path\n" in r.stderr, r.stderr
    assert f"calls={n * calls} " in r.stdout
    total = n * calls
    assert _map(r.out, "c") == {"": str(total)}
    assert _map(r.out, "s") == {"": str(total * (total - 1) // 2)}
    assert _map(r.out, "per") == {str(t): str(calls) for t in range(n)}
    buckets: dict[int, int] = {}
    for x in range(total):
        i = hist_index(x % 1000)
        buckets[i] = buckets.get(i, 0) + 1
    counts = [int(m.group(1)) for m in re.finditer(r"^\[[^\])]*[\])]\s+(\d+) \|", r.out, re.M)]
    assert counts == [buckets[i] for i in sorted(buckets)]


def test_return_probe_on_recursion(up: Uprobe, builder) -> None:
    prog = builder.build("jump_work.c", "-O2", "-pthread")
    script = (f"uprobe:{prog}:fib {{ @e = count(); }} "
              f"uretprobe:{prog}:fib {{ @r = count(); @s = sum(retval); }}")
    r = up.run("-v", "-e", script, "-c", f"{prog} 0 0 22", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(": jump path\n") == 2, r.stderr
    truth = dict(kv.split("=") for kv in r.stdout.split()[1:])
    assert _map(r.out, "e") == {"": truth["calls"]}
    assert _map(r.out, "r") == {"": truth["calls"]}
    assert _map(r.out, "s") == {"": truth["retsum"]}


def test_longjmp_out_of_a_probed_frame(up: Uprobe, builder) -> None:
    prog = builder.build("rt_longjmp.c", "-O1", "-fno-omit-frame-pointer")
    script = (f"uprobe:{prog}:leave {{ @e = count(); }} "
              f"uretprobe:{prog}:leave {{ @r = count(); @s = sum(retval); }}")
    r = up.run("-v", "-e", script, "-c", str(prog), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(": jump path\n") == 2, r.stderr
    assert r.stdout == "sum=24500 jumps=50\n"
    assert _map(r.out, "e") == {"": "100"}
    assert _map(r.out, "r") == {"": "50"}
    assert _map(r.out, "s") == {"": "24500"}


def test_cxx_exception_through_a_probed_frame(up: Uprobe, builder) -> None:
    """Entry probes take the jump path; the return probe keeps the trap path in a
    process that can throw (the unwinder must not meet a trampoline), and says so."""
    prog = builder.build("rt_throw.cc", "-O1")
    script = (f"uprobe:{prog}:_Z6middlei {{ @e = count(); }} "
              f"uretprobe:{prog}:_Z6middlei {{ @r = count(); @s = sum(retval); }}")
    r = up.run("-v", "-e", script, "-c", str(prog), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "sum=400 caught=7 swallowed=13 guards=40\n"
    assert "uprobe:" in r.stderr and ": jump path\n" in r.stderr, r.stderr
    assert "trap path (a return probe in a process that can throw C++ exceptions" in r.stderr
    assert _map(r.out, "e") == {"": "40"}
    assert _map(r.out, "r") == {"": "20"}
    assert _map(r.out, "s") == {"": str(sum(i + 1 for i in range(0, 40, 2)))}


def test_printf_on_every_hit_keeps_every_line_in_thread_order(up: Uprobe,
                                                              threads: Path) -> None:
    n, calls = 4, 50_000
    script = f'uprobe:{threads}:work {{ printf("%d %d\\n", arg1, arg0); }}'
    r = up.run("-e", script, "-c", f"{threads} {n} {calls}", timeout=300)
    assert r.returncode == 0, r.stderr
    seen: dict[int, list[int]] = {t: [] for t in range(n)}
    for line in r.out.splitlines():
        if line and line[0].isdigit():
            t, x = line.split()
            seen[int(t)].append(int(x))
    for t in range(n):
        assert seen[t] == list(range(t * calls, (t + 1) * calls)), t


def test_printf_without_arguments_on_every_hit(up: Uprobe, threads: Path) -> None:
    script = f'uprobe:{threads}:work {{ printf("hit\\n"); }}'
    r = up.run("-e", script, "-c", f"{threads} 2 1000", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.out.count("hit\n") == 2000


def test_drop_mode_with_a_small_ring_counts_what_it_lost(up: Uprobe, threads: Path) -> None:
    n, calls = 4, 50_000
    script = ('config = { ring_records = 64; ring_full = drop; } '
              f'uprobe:{threads}:work {{ printf("%d\\n", arg0); }}')
    r = up.run("-e", script, "-c", f"{threads} {n} {calls}", timeout=300)
    assert r.returncode == 0, r.stderr
    printed = sum(1 for line in r.out.splitlines() if line and line[0].isdigit())
    m = re.search(r"^Lost (\d+) events$", r.stderr, re.M)
    lost = int(m.group(1)) if m else 0
    assert printed + lost == n * calls
    assert printed > 0


def test_trap_option_forces_the_trap_path(up: Uprobe, threads: Path) -> None:
    script = f"uprobe:{threads}:work {{ @c = count(); }}"
    r = up.run("-v", "--trap", "-e", script, "-c", f"{threads} 2 500", timeout=120)
    assert r.returncode == 0, r.stderr
    assert ": trap path\n" in r.stderr and "jump path" not in r.stderr
    assert _map(r.out, "c") == {"": "1000"}


def test_dry_run_verbose_says_which_path(up: Uprobe, threads: Path) -> None:
    script = (f"uprobe:{threads}:work {{ @c = count(); }} "
              f"uprobe:{threads}:run {{ @[ustack] = count(); }}")
    r = up.run("--dry-run", "-v", "-e", script, timeout=60)
    assert r.returncode == 0, r.stderr
    text = r.out + r.stderr
    assert re.search(r"work.*: jump path", text), text
    assert re.search(r"run.*: trap path \(handler uses ustack", text), text


@pytest.mark.parametrize("events", [False, True])
def test_sigkill_of_the_tracer_while_hot(tmp_path: Path, builder, events: bool,
                                         reaper) -> None:
    """The tracer dies (SIGKILL) while 4 threads run through jump-path sites: the target
    keeps running and finishes normally (a full ring must not make it wait forever)."""
    spin = builder.build("jump_spin.c", "-O2", "-pthread")
    target = subprocess.Popen([str(spin), "4"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    reaper.add(target.pid)
    assert target.stdout is not None
    assert target.stdout.readline() == "ready\n"
    body = 'printf("%d\\n", arg0);' if events else "@c = count();"
    script = f"config = {{ ring_records = 64; }} uprobe:{spin}:work {{ {body} }}"
    tracer = subprocess.Popen([*UPROBE, "-v", "-o", str(tmp_path / "out"), "-e", script,
                               "-p", str(target.pid)], env=uprobe_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reaper.add(tracer.pid)
    assert tracer.stderr is not None
    lines = []
    for line in tracer.stderr:
        lines.append(line)
        if line.startswith("Attached"):
            break
    assert any(": jump path" in line for line in lines), lines
    tracer.send_signal(signal.SIGKILL)
    tracer.wait(timeout=60)
    out, _ = target.communicate("", timeout=120)
    assert target.returncode == 0
    assert out.startswith("calls=")

"""`--cpu N`: the tracer is pinned to CPU N, a -c program starts there too, a -p program
keeps its affinity, and an unavailable CPU is a one-line error."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import UPROBE, uprobe_env

pytestmark = pytest.mark.timeout(90)



def _count(prog: object) -> str:
    return f"uprobe:{prog}:work {{ @n = count(); }}"


def _lines(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def test_cpu_pins_the_tracer_and_the_spawned_program(builder, uprobe):
    prog = builder.build("cpu_affinity.c", "-O1")
    cpu = max(os.sched_getaffinity(0))
    done = uprobe.run("-q", "--cpu", str(cpu), "-e", _count(prog),
                      "-c", f"{prog} 25")
    assert done.returncode == 0, done.stderr
    seen = _lines(done.stdout)
    assert seen == {"sum": "925", "self": str(cpu), "tracer": str(cpu)}
    assert "@n: 25" in done.out


def test_without_cpu_the_program_keeps_its_affinity(builder, uprobe):
    prog = builder.build("cpu_affinity.c", "-O1")
    done = uprobe.run("-q", "-e", _count(prog), "-c", f"{prog} 5")
    assert done.returncode == 0, done.stderr
    allowed = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    assert _lines(done.stdout)["self"] == allowed
    assert "@n: 5" in done.out


def test_an_unavailable_cpu_is_a_one_line_error(builder, uprobe):
    prog = builder.build("cpu_affinity.c", "-O1")
    bad = max(os.sched_getaffinity(0)) + 4096
    done = uprobe.run("-q", "--cpu", str(bad), "-e", _count(prog), "-c", f"{prog} 5")
    assert done.returncode == 2
    assert f"cannot pin to CPU {bad}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""  # the program never ran


def test_cpu_must_be_a_number(uprobe):
    done = uprobe.run("--cpu", "x", "-e", "BEGIN { exit(); }")
    assert done.returncode == 1
    assert "not a CPU number: 'x'" in done.stderr


def _allowed_list(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


def test_cpu_never_touches_an_attached_program(builder, reaper, tmp_path):
    prog = builder.build("cpu_affinity.c", "-O1")
    target = subprocess.Popen([str(prog), "7", "wait"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    reaper.add(target.pid)
    assert target.stdout.readline() == "ready\n"
    before = _allowed_list(target.pid)
    cpu = max(os.sched_getaffinity(0))
    tool = subprocess.Popen([*UPROBE, "--cpu", str(cpu), "-p", str(target.pid), "-e",
                             _count(prog)], cwd=tmp_path, env=uprobe_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reaper.add(tool.pid)
    assert tool.stderr.readline() == "Attached 1 probe\n"
    assert _allowed_list(tool.pid) == str(cpu)
    assert _allowed_list(target.pid) == before
    out, _ = target.communicate(input="go\n", timeout=60)
    allowed = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    assert _lines(out)["self"] == allowed and target.returncode == 0
    tool_out, _ = tool.communicate(timeout=60)
    assert "@n: 7" in tool_out

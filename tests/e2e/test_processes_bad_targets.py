"""Targets that cannot be traced: each is one clear line on stderr from the CLI, exit
status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT, uprobe_env

pytestmark = pytest.mark.timeout(60)

NOBODY = 65534
# The CLI as user nobody. The interpreter and its library live under /root, which nobody
# cannot read: a first run as root against a pid that cannot exist imports every module
# the attach path needs, then every privilege is dropped before the real run.
AS_NOBODY = f"""
import contextlib, io, os, sys
import uplang.cli
args = sys.argv[1:]
with contextlib.redirect_stderr(io.StringIO()):
    assert uplang.cli.main([*args[:-1], str(1 << 30)]) == 2
os.setgroups([])
os.setresgid({NOBODY}, {NOBODY}, {NOBODY})
os.setresuid({NOBODY}, {NOBODY}, {NOBODY})
sys.exit(uplang.cli.main(args))
"""


def one_line(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr


@pytest.fixture(scope="module")
def prog(builder):
    return builder.build("proc_fork.c", "-O1")


def probe(prog) -> str:
    return f"uprobe:{prog}:work {{ @c = count(); }}"


def test_pid_that_does_not_exist(uprobe, prog):
    with open("/proc/sys/kernel/pid_max") as f:
        missing = int(f.read()) + 1
    r = uprobe.run("-e", probe(prog), "-p", str(missing))
    assert one_line(r) == f"uprobe: no process with pid {missing}\n"


def test_process_already_traced_by_another_tracer(uprobe, prog, builder, reaper):
    holder = subprocess.Popen([str(builder.build("proc_traced.c", "-O1"))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reaper.add(holder.pid)
    line = holder.stdout.readline()
    assert line.startswith("traced ")
    child = reaper.add(int(line.split()[1]))
    r = uprobe.run("-e", probe(prog), "-p", str(child))
    assert one_line(r) == (f"uprobe: cannot trace pid {child}: it is already traced by pid "
                           f"{holder.pid} (a debugger or another tracer)\n")
    holder.communicate(input="", timeout=30)
    assert holder.returncode == 0  # the other tracer's child was not disturbed


def test_process_of_another_user(prog, reaper):
    victim = subprocess.Popen(["sleep", "60"])
    reaper.add(victim.pid)
    env = uprobe_env()
    r = subprocess.run([sys.executable, "-c", AS_NOBODY, "-e", probe(prog), "-p",
                        str(victim.pid)], cwd="/", env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert one_line(r) == (f"uprobe: cannot trace pid {victim.pid}: it belongs to another "
                           "user (uid 0); run uprobe as that user or as root\n")
    assert victim.poll() is None  # untouched


def test_process_that_has_exited(uprobe, prog, reaper):
    # A zombie: gone, only its exit status is left to collect.
    dead = subprocess.Popen(["true"])
    reaper.add(dead.pid)
    os.waitid(os.P_PID, dead.pid, os.WEXITED | os.WNOWAIT)
    r = uprobe.run("-e", probe(prog), "-p", str(dead.pid))
    assert one_line(r) == f"uprobe: process {dead.pid} has exited\n"


def test_command_that_is_not_elf(uprobe, prog, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("hello\n")
    script.chmod(0o755)
    r = uprobe.run("-e", probe(prog), "-c", "./script.txt")
    assert one_line(r) == "uprobe: cannot run ./script.txt: Exec format error\n"
    script.chmod(0o644)
    r = uprobe.run("-e", probe(prog), "-c", "./script.txt")
    assert one_line(r) == "uprobe: cannot run ./script.txt: Permission denied\n"


def test_probe_on_a_file_that_is_not_elf(uprobe, prog, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    r = uprobe.run("-e", f"uprobe:{text}:main {{ @c = count(); }}", "-c", f"{prog} leaf 1")
    assert one_line(r) == f"uprobe: {text} is not an ELF file\n"
    assert r.stdout == ""  # the command was never let run untraced


def test_paths_that_do_not_exist(uprobe, prog, tmp_path):
    r = uprobe.run("-e", probe(prog), "-c", "./nope")
    assert one_line(r) == "uprobe: cannot run ./nope: No such file or directory\n"
    missing = tmp_path / "missing"
    r = uprobe.run("-e", f"uprobe:{missing}:main {{ @c = count(); }}", "-c", f"{prog} leaf 1")
    assert one_line(r) == f"uprobe: {missing}: no such file\n"
    assert r.stdout == ""


def test_root_is_importable_as_nobody():
    # The nobody test above needs the source tree readable by everyone.
    assert os.stat(ROOT).st_mode & 0o005 == 0o005

"""uprobe's output read by a program that stops reading (`uprobe ... | head -3`): on the
broken pipe uprobe stops, detaches cleanly and exits (as bpftrace does) instead of keeping
the target in tracing stops for as long as it runs."""

from __future__ import annotations

import re
import subprocess

import pytest
from programs.textsnap import executable_text

from .conftest import UPROBE, uprobe_env

pytestmark = pytest.mark.timeout(120)


def test_broken_output_pipe_detaches_and_exits(builder, reaper, tmp_path):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    target = subprocess.Popen([str(prog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    reaper.add(target.pid)
    assert target.stdout.readline() == "ready\n"
    before = executable_text(target.pid)
    tool = subprocess.Popen([*UPROBE, "-p", str(target.pid), "-e",
                             f'uprobe:{prog}:work {{ printf("hit\\n"); }}'],
                            cwd=tmp_path, env=uprobe_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    reaper.add(tool.pid)
    assert [tool.stdout.readline() for _ in range(3)] == ["hit\n"] * 3
    tool.stdout.close()  # the reader goes away, as `head -3` does
    _, err = tool.communicate(timeout=90)
    # Events still on their way when the pipe broke may be counted as lost (jump path).
    lines = err.splitlines()
    assert (tool.returncode, lines[0]) == (0, "Attached 1 probe")
    assert all(re.fullmatch(r"Lost \d+ events", line) for line in lines[1:]), err
    after = executable_text(target.pid)
    assert all(after[key] == data for key, data in before.items())
    out, _ = target.communicate(input="", timeout=60)
    assert (out, target.returncode) == ("ok 1\n", 7)

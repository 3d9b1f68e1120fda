"""Signals through the CLI: the traced program's own signal handling, traps and job
control are untouched, and probes inside its signal handlers count exactly."""

from __future__ import annotations

import re
import subprocess

import pytest

pytestmark = pytest.mark.timeout(120)


def keyed(out: str, name: str = "") -> dict[int, int]:
    return {int(k): int(v) for k, v in re.findall(rf"^@{name}\[(\d+)\]: (\d+)$", out, re.M)}


def test_signal_handlers_and_own_traps(uprobe, builder):
    prog = builder.build("proc_signals.c", "-O1")
    r = uprobe.run("-e", f"uprobe:{prog}:in_handler {{ @[arg0] = count(); }}",
                   "-c", f"{prog} 20")
    baseline = subprocess.run([str(prog), "20"], capture_output=True, text=True, timeout=60)
    # The target exited with 3; uprobe's own status says how tracing went (0), as bpftrace.
    assert (r.returncode, baseline.returncode) == (0, 3), r.stderr
    assert r.stdout == baseline.stdout == "sum=210 usr1=20 alrm=20 traps=40 handled=680\n"
    assert keyed(r.out) == {5: 40, 10: 20, 14: 20}


def test_job_control_seen_by_the_real_parent(uprobe, builder):
    prog = builder.build("proc_jobctl.c", "-O1")
    r = uprobe.run("-e", f"uprobe:{prog}:work {{ @[pid] = count(); }}", "-c", f"{prog} 200")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "parent saw: stopped by 19\nparent saw: continued\n"
        "parent saw: stopped by 20\nparent saw: continued\n"
        "child sum=60300\nparent saw: exited 5\n")
    assert list(keyed(r.out).values()) == [600]

"""Effects end to end: sleeping handlers do not slow the target, system()/cat()/signal(),
sync clauses, exit(), and Ctrl-C (SIGINT to the tool) with the target running on."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from e2e.groundtruth import checksum, done_line

pytestmark = pytest.mark.timeout(120)


def test_sleeping_handler_does_not_stretch_the_target(uprobe, target) -> None:
    base = uprobe.run("-e", f"uprobe:{target}:work {{ @c = count(); }}", "-c", f"{target} 40")
    t0 = time.monotonic()
    # sleep(ms) exists in the runtime but the front end does not know it yet: system().
    slow = uprobe.run("--unsafe", "-e", f'uprobe:{target}:work '
                      f'{{ system("sleep 0.05"); printf("slept %d\\n", arg0); }}',
                      "-c", f"{target} 40")
    tool_seconds = time.monotonic() - t0
    assert base.returncode == 0 and slow.returncode == 0, slow.stderr
    # 40 x 50 ms = 2 s of sleeping, all of it after the target was let go: how little the
    # target's own time grows is measured in bench/lookup_costs.py (a wall-clock ratio).
    base_done, slow_done = done_line(base.stdout), done_line(slow.stdout)
    assert base_done and slow_done and base_done[0] == slow_done[0]
    assert [x for x in slow.out.splitlines() if x.startswith("slept")] == [
        f"slept {i}" for i in range(40)]
    assert tool_seconds >= 2.0


def test_system_cat_and_sync_keep_the_thread_stopped(uprobe, target) -> None:
    script = (f"sync uprobe:{target}:work /arg0 == 1/ "
              f'{{ system("grep State /proc/%d/status", pid); cat("/proc/%d/comm", pid); }}')
    r = uprobe.run("--unsafe", "-e", script, "-c", f"{target} 3")
    assert r.returncode == 0, r.stderr
    lines = r.out.splitlines()
    assert lines[0] == "State:\tt (tracing stop)"
    assert lines[1] == target.name[:15]
    assert done_line(r.stdout)[0] == checksum(3)


def test_system_needs_unsafe(uprobe, target) -> None:
    r = uprobe.run("-e", f'uprobe:{target}:work {{ system("true"); }}', "-c", f"{target} 1")
    assert r.returncode == 1
    assert "unsafe" in r.stderr and "Traceback" not in r.stderr


def test_signal_kills_the_target(uprobe, target) -> None:
    r = uprobe.run("--unsafe", "-e",
                   f'uprobe:{target}:work /arg0 == 2/ {{ signal("SIGKILL"); }} '
                   f"uprobe:{target}:work {{ @c = count(); }}", "-c", f"{target} 10")
    assert r.returncode == 0, r.stderr
    assert done_line(r.stdout) is None
    assert r.out.endswith("@c: 3\n")


def test_exit_after_n_events_detaches_and_the_target_runs_on(uprobe, target) -> None:
    script = (f"uprobe:{target}:work {{ @n = count(); if (@n == 3) {{ exit(); }} }} "
              f'END {{ printf("end\\n"); }}')
    r = uprobe.run("-e", script, "-c", f"{target} 50")
    assert r.returncode == 0, r.stderr
    assert "end\n\n\n@n: 3\n" in r.out
    assert done_line(r.stdout)[0] == checksum(50)


def test_ctrl_c_prints_maps_runs_end_and_detaches(uprobe, target, reaper) -> None:
    # Long enough (>= 5 s) that the tool, slow to start on a loaded machine, finds the
    # target still running: a finished target would be a zombie that cannot be traced.
    rounds = 1000
    prog = subprocess.Popen([str(target), str(rounds), "5000"], stdout=subprocess.PIPE,
                            text=True)
    reaper.add(prog.pid)
    tool = uprobe.popen("-p", str(prog.pid), "-e",
                        f'uprobe:{target}:work {{ @calls = count(); printf("hit\\n"); }} '
                        f'END {{ printf("end\\n"); }}')
    reaper.add(tool.pid)
    assert tool.stderr.readline() == "Attached 2 probes\n"
    assert tool.stdout.readline() == "hit\n"
    tool.send_signal(signal.SIGINT)
    out, err = tool.communicate(timeout=60)
    assert tool.returncode == 0, err
    assert out.endswith("end\n\n\n@calls: " + out.rsplit("@calls: ", 1)[1])
    calls = int(out.rsplit("@calls: ", 1)[1])
    assert 1 <= calls < rounds
    assert out.count("hit\n") == calls - 1
    target_out, _ = prog.communicate(timeout=60)
    assert prog.returncode == 0
    assert done_line(target_out)[0] == checksum(rounds)

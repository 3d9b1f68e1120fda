"""uprobe killed with SIGKILL at a random moment while probes fire: the program survives
(runtime/lifeline.py) and finishes with its own correct result. Entry, return and USDT
probes on the trap path (--trap), attached with -p and started with -c; the survival rate
is reported per kind."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess

import pytest

from .conftest import UPROBE, uprobe_env

pytestmark = pytest.mark.timeout(600)

# Kills per (kind, mode): 6 kinds x 5 = 30 random kill times.
KILLS = 5
SCRIPTS = {
    # step() begins with push %rbp; mov %rsp,%rbp (probed as one site), work() with lea.
    "entry": "uprobe:{prog}:step {{ @n = count(); if (@n == {k}) {{ printf(\"go\\n\"); }} }} "
             "uprobe:{prog}:work {{ @w = count(); }}",
    "return": "uretprobe:{prog}:step {{ @n = count(); if (@n == {k}) {{ printf(\"go\\n\"); }} }}",
    "usdt": "usdt:{prog}:demo:tick {{ @n = count(); if (@n == {k}) {{ printf(\"go\\n\"); }} }}",
}


@pytest.fixture(scope="module")
def program(builder):
    return builder.build("survive_kill.c", "-O1", "-fno-omit-frame-pointer", "-pthread")


def _read_until(stream, *wanted: str) -> list[str]:
    """Lines up to the point where a line starting with each of `wanted` has been seen."""
    lines: list[str] = []
    missing = set(wanted)
    while missing:
        line = stream.readline()
        assert line, f"output ended before {sorted(missing)}: {lines}"
        lines.append(line)
        missing = {w for w in missing if not line.startswith(w)}
    return lines


def _kill_at_random(tool: subprocess.Popen, rng: random.Random) -> None:
    """SIGKILL after a random few hundred microseconds past the chosen hit's report."""
    select.select([], [], [], rng.random() * 0.003)
    tool.send_signal(signal.SIGKILL)
    tool.wait()


def _wait_gone(pid: int) -> None:
    """A process that is not our child: wait for its end through a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], 120)
    finally:
        os.close(fd)


def attach_and_kill(program, script: str, tmp_path, reaper, rng) -> bool:
    target = subprocess.Popen([str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    reaper.add(target.pid)
    assert target.stdout.readline().startswith("ready")
    tool = subprocess.Popen([*UPROBE, "--trap", "-p", str(target.pid), "-e", script], cwd=tmp_path,
                            env=uprobe_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    reaper.add(tool.pid)
    _read_until(tool.stdout, "go")
    _kill_at_random(tool, rng)
    out, _ = target.communicate(input="", timeout=120)
    return (out, target.returncode) == ("ok 1\n", 7)


def spawn_and_kill(program, script: str, tmp_path, reaper, rng) -> bool:
    tool = subprocess.Popen([*UPROBE, "--trap", "-e", script, "-c", str(program)], cwd=tmp_path,
                            env=uprobe_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    reaper.add(tool.pid)
    # The program writes into the same pipe as uprobe: its "ready PID" and later its result.
    lines = _read_until(tool.stdout, "go", "ready")
    ready = next(line for line in lines if line.startswith("ready"))
    pid = reaper.add(int(ready.split()[1]))
    _kill_at_random(tool, rng)
    tool.stdin.close()  # the program's stdin: EOF makes it finish
    rest = tool.stdout.read()
    _wait_gone(pid)
    return "ok 1\n" in rest


@pytest.mark.parametrize("mode", ["-p", "-c"])
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_target_survives_sigkill_of_the_tracer(program, tmp_path, reaper, kind, mode):
    rng = random.Random()
    run = attach_and_kill if mode == "-p" else spawn_and_kill
    survived = 0
    for _ in range(KILLS):
        script = SCRIPTS[kind].format(prog=program, k=rng.randint(1, 3000))
        survived += run(program, script, tmp_path, reaper, rng)
    print(f"\nsurvival after SIGKILL of uprobe ({kind}, {mode}): {survived}/{KILLS}")
    assert survived == KILLS, f"the program survived {survived} of {KILLS} kills ({kind}, {mode})"

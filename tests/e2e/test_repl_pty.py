"""`uprobe repl -c CMD` through a real pseudo-terminal: type a clause against the spawned
program, read its output from the screen, list it, detach with the program running on."""

from __future__ import annotations

import os
import re
import signal

import pexpect
import pytest

from tests.e2e.conftest import UPROBE, uprobe_env

pytestmark = pytest.mark.timeout(120)
REPL = [*UPROBE, "repl"]  # `uprobe repl`, as installed


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_type_a_clause_and_read_its_output(builder, reaper, tmp_path):
    prog = builder.build("repl_loop.c", "-O1")
    env = uprobe_env()
    env["UPROBE_HISTORY"] = str(tmp_path / "history")
    env["TERM"] = "xterm"
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # pexpect does not answer cursor position requests
    child = pexpect.spawn(REPL[0], [*REPL[1:], "-c", str(prog)], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 200))
    reaper.add(child.pid)
    target = 0
    try:
        child.expect(r"started pid (\d+)")
        target = int(child.match.group(1))
        reaper.add(target)
        child.expect(r"uprobe\[\d+\]>")
        child.send(f'uprobe:{prog}:tick /arg0 % 100 == 0/ {{ printf("tick=%d\\n", arg0); }}\r')
        child.expect(r"\[1\] uprobe:\S+:tick: 1 site")
        child.expect(r"tick=(\d+)")
        first = int(child.match.group(1))
        child.expect(r"tick=(\d+)")
        assert first % 100 == 0 and int(child.match.group(1)) == first + 100
        # A half-typed line, dropped with Ctrl-C; then the listing.
        child.send("uprobe:nothing")
        child.sendcontrol("c")
        child.send(":probes\r")
        child.expect(r"\[1\] (\d+) hits, 1 site: uprobe:")
        assert int(child.match.group(1)) >= 200
        child.send(":detach\r")
        child.expect(rf"detached from pid {target}")
        # Detached, not killed: the program runs on untraced. (Once the REPL exits, the
        # terminal hangs up on it, as on any job of that terminal.)
        assert alive(target)
        with open(f"/proc/{target}/status") as f:
            assert re.search(r"^TracerPid:\s+0$", f.read(), re.M)
        child.expect(r"uprobe>")
        child.send(":quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
        if target and alive(target):
            os.kill(target, signal.SIGKILL)
    assert child.exitstatus == 0
    history = (tmp_path / "history").read_text()
    assert "+uprobe:" in history and "+:probes" in history and "nothing" not in history


def test_sigterm_leaves_the_attached_program_as_it_was(builder, reaper, tmp_path):
    import subprocess

    from runtime.elfsyms import ElfFile

    prog = builder.build("repl_loop.c", "-O1")
    target = subprocess.Popen([str(prog)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    reaper.add(target.pid)
    assert target.stdout.readline() == b"ready\n"
    elf = ElfFile.open(str(prog))
    where = elf.function("tick").vaddr + elf.load_bias(target.pid)

    def first_byte() -> int:
        with open(f"/proc/{target.pid}/mem", "rb") as mem:
            mem.seek(where)
            return mem.read(1)[0]

    original = first_byte()
    env = uprobe_env()
    env["UPROBE_HISTORY"] = str(tmp_path / "history")
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    child = pexpect.spawn(REPL[0], [*REPL[1:], "-p", str(target.pid)], env=env,
                          encoding="utf-8", timeout=30, dimensions=(40, 200))
    reaper.add(child.pid)
    try:
        child.expect(rf"attached to pid {target.pid}")
        child.send(f"uprobe:{prog}:tick {{ @ticks = count(); }}\r")
        child.expect(r"\[1\] uprobe:\S+:tick: 1 site")
        assert first_byte() == 0xCC
        child.kill(signal.SIGTERM)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.signalstatus is None and child.exitstatus == 128 + signal.SIGTERM
    assert first_byte() == original
    assert target.poll() is None
    with open(f"/proc/{target.pid}/status") as f:
        assert re.search(r"^TracerPid:\s+0$", f.read(), re.M)
    target.stdout.close()

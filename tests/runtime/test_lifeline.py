"""The in-target SIGTRAP handler (runtime/lifeline.py): its embedded bytes are its source
assembled; while attached it is the SIGTRAP action, with every probed byte in its table;
detach gives the program its own action back."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from programs.rt_support import placement

from runtime import lifeline
from runtime.session import Session

pytestmark = pytest.mark.timeout(180)
SOURCE = Path(lifeline.__file__).with_suffix(".S")
TRAP_BIT = 1 << (signal.SIGTRAP - 1)


def test_embedded_code_is_the_assembled_source(tmp_path):
    obj, flat = tmp_path / "lifeline.o", tmp_path / "lifeline.bin"
    subprocess.run(["gcc", "-c", str(SOURCE), "-o", str(obj)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(flat)], check=True)
    code = flat.read_bytes()
    assert code[: len(lifeline.CODE)] == lifeline.CODE
    assert code[len(lifeline.CODE): lifeline.PROGRAM_ACTION] == bytes(
        lifeline.PROGRAM_ACTION - len(lifeline.CODE))
    # the restorer is the code's last instruction pair: mov $15,%eax; syscall
    assert lifeline.CODE[lifeline.RESTORER:] == bytes.fromhex("b80f0000000f05")


def test_bucket_is_the_handlers_hash():
    assert lifeline.bucket(0, 14) == 0
    assert lifeline.bucket(1, 14) == lifeline.GOLDEN >> 50
    assert all(0 <= lifeline.bucket(a, 13) < 1 << 13 for a in range(0x7F00_0000_0000, 0x7F00_0000_0100))


def _caught(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("SigCgt:"))
    return bool(int(line.split()[1], 16) & TRAP_BIT)


def test_installed_while_attached_and_given_back_at_detach(builder, reaper):
    prog = builder.build("rt_spin.c", "-O1", "-pthread")
    proc = subprocess.Popen([str(prog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reaper.add(proc.pid)
    assert proc.stdout.readline() == "ready\n"
    assert not _caught(proc.pid)
    session = Session.attach(proc.pid)
    seen: dict[str, object] = {}

    def handler(ctx):
        if "line" not in seen:
            tproc = ctx.thread.proc
            seen["line"] = lifeline.of(tproc)
            seen["caught"] = _caught(ctx.pid)
            seen["site"] = ctx.regs.rip
            ctx.session.stop()

    session.add_probe(placement(prog, "step"), handler, kind="entry")
    session.add_probe(placement(prog, "step"), lambda ctx: None, kind="return")
    session.run()
    line = seen["line"]
    assert isinstance(line, lifeline.LifeLine) and seen["caught"]
    # Every byte of step's first instruction (call rel32: 5 bytes) is in the table, and the
    # two trampoline bytes.
    site = seen["site"]
    assert all(a in line.sites for a in range(site, site + 5))
    assert not _caught(proc.pid)
    out, _ = proc.communicate(input="", timeout=60)
    assert (out, proc.returncode) == ("ok 1\n", 7)

"""The jump path's mechanics on real processes, with a stand-in in-target program:
trampolines keep every register and the flags, live patching of running threads loses and
doubles no hit, detach leaves the text byte-identical."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from programs.jump_fake import (
    ENTRY_ARG_SUM,
    ENTRY_HITS,
    PER_THREAD,
    RET_HITS,
    RET_SUM,
    fake_program,
    word,
)
from programs.rt_support import Spawned

from runtime.elfsyms import ElfFile
from runtime.jump import sites
from runtime.jump.eligible import FunctionCode, check_site
from runtime.procmaps import read_maps
from runtime.session import Session


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory):
    return fake_program(tmp_path_factory.mktemp("fake"))


@pytest.fixture(scope="module")
def work(builder) -> Path:
    return builder.build("jump_work.c", "-O2", "-pthread")


def _site(session, exe: Path, name: str, sym_name: str | None = None):
    """The jump-path verdict for symbol `name` (inside function `sym_name`) in the target."""
    elf = ElfFile.open(str(exe))
    bias = elf.load_bias(session.pid, read_maps(session.pid))
    func = elf.function(sym_name or name)
    addr = (elf.symbol_vaddr(name) or 0) + bias
    start = func.vaddr + bias
    proc = session.engine.procs[session.pid]
    code = FunctionCode(func.name, start, proc.mem.read(start, func.size))
    return proc, check_site(proc.mem.read(addr, 64), addr, code)


def test_entry_counts_and_output_exact(work, program, tmp_path, reaper):
    """4 threads x 20,000 calls of work() and flagsy(): hits and argument sums exact, and
    the program computes what it computes untraced (registers and flags survive)."""
    threads, calls = 4, 20_000
    expected = os.popen(f"{work} {threads} {calls}").read()
    run = Spawned([str(work), str(threads), str(calls)], tmp_path, reaper)
    s = run.session
    proc, v_work = _site(s, work, "work")
    _, v_flags = _site(s, work, "flagsy_site", "flagsy")
    assert v_work.site is not None, v_work.reason
    assert v_flags.site is not None, v_flags.reason
    assert v_flags.site.flags_live
    state = sites.open_state(s.engine, proc, program, v_work.site.address)
    sites.place(s.engine, proc, state, program, v_work.site, 1, True, False)
    sites.place(s.engine, proc, state, program, v_flags.site, 2, True, False)
    status = run.run()
    assert status.code == 0
    assert run.output() == expected
    view = state.shm.view
    assert word(view, ENTRY_HITS + 8) == threads * calls
    assert word(view, ENTRY_HITS + 16) == threads * calls
    assert word(view, ENTRY_ARG_SUM + 8) == sum(i + t for t in range(threads)
                                                for i in range(calls))


def test_return_probe_on_recursion(work, program, tmp_path, reaper):
    """fib(18) with entry and return on the jump path: entries == returns, the sum of the
    return values is right, and the program's answer too."""
    run = Spawned([str(work), "0", "0", "18"], tmp_path, reaper)
    s = run.session
    proc, v = _site(s, work, "fib")
    assert v.site is not None, v.reason
    state = sites.open_state(s.engine, proc, program, v.site.address)
    sites.place(s.engine, proc, state, program, v.site, 5, True, True)
    assert run.run().code == 0
    out = run.output()
    assert out.startswith("total=0\nfib=2584 ")
    truth = dict(kv.split("=") for kv in out.split()[1:])
    view = state.shm.view
    assert word(view, ENTRY_HITS + 5 * 8) == int(truth["calls"])
    assert word(view, RET_HITS) == int(truth["calls"])
    assert word(view, RET_SUM) == int(truth["retsum"])


@pytest.fixture(scope="module")
def spin(builder) -> Path:
    return builder.build("jump_spin.c", "-O2", "-pthread")


class Spinner:
    """jump_spin running untraced with `n` threads, all of them through work() already."""

    def __init__(self, exe: Path, n: int, reaper) -> None:  # noqa: ANN001
        self.n = n
        self.proc = subprocess.Popen([str(exe), str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        reaper.add(self.proc.pid)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "ready\n"

    def finish(self) -> str:
        out, _ = self.proc.communicate("", timeout=120)
        assert self.proc.returncode == 0
        return out


def _wait_hits(view, n: int, at_least: int) -> None:  # noqa: ANN001
    """Until every thread's slot counts `at_least` hits (the threads run freely)."""
    deadline = time.monotonic() + 120
    while any(word(view, PER_THREAD + 32 * t) < at_least for t in range(n)):
        assert time.monotonic() < deadline, "the threads stopped hitting the site"
        time.sleep(0.001)


def _contiguous(view, n: int) -> None:  # noqa: ANN001
    """Each thread's hits are one unbroken run of its call numbers: none lost, none twice.
    A thread let go in the middle of the stand-in's bookkeeping completes it a moment
    later, so the words are read until consistent (a real loss or double never is)."""
    for t in range(n):
        deadline = time.monotonic() + 20
        while True:
            count, total, first, last = (word(view, PER_THREAD + 32 * t + 8 * k)
                                         for k in range(4))
            if count == last - first + 1 and total == (first + last) * count // 2:
                break
            assert time.monotonic() < deadline, (t, count, total, first, last)
            time.sleep(0.001)


def _text(pid: int, addr: int, size: int) -> bytes:
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return f.read(size)


def test_patch_while_16_threads_run_through_the_site(spin, program, reaper):
    """Patch and unpatch while 16 threads call the site: no crash, every thread's hits
    contiguous (none lost, none doubled), the text byte-exact after detach."""
    sp = Spinner(spin, 16, reaper)
    s = Session.attach(sp.proc.pid)
    try:
        proc, v = _site(s, spin, "work")
        assert v.site is not None, v.reason
        before = _text(s.pid, v.site.address, 64)
        state = sites.open_state(s.engine, proc, program, v.site.address)
        sites.place(s.engine, proc, state, program, v.site, 1, True, False)
        assert _text(s.pid, v.site.address, 1) == b"\xe9"
        _wait_hits(state.shm.view, 16, 2000)
        sites.unpatch(s.engine, proc, state, v.site.address)
        _contiguous(state.shm.view, 16)
        assert _text(s.pid, v.site.address, 64) == before
    finally:
        s.detach()
    assert sp.finish().startswith("calls=")


def test_attach_detach_cycles(spin, program, reaper):
    """Attach, patch, run, detach (which restores the bytes) again and again on a running
    4-thread process: the text is byte-exact each time and the program finishes normally."""
    sp = Spinner(spin, 4, reaper)
    elf = ElfFile.open(str(spin))
    cycles = int(os.environ.get("UPROBE_JUMP_CYCLES", "25"))
    for _ in range(cycles):
        s = Session.attach(sp.proc.pid)
        try:
            proc, v = _site(s, spin, "work")
            assert v.site is not None, v.reason
            base = elf.load_bias(s.pid, read_maps(s.pid))
            pristine = elf.read(elf.vaddr_to_offset(v.site.address - base) or 0, 64)
            assert _text(s.pid, v.site.address, 64) == pristine
            state = sites.open_state(s.engine, proc, program, v.site.address)
            sites.place(s.engine, proc, state, program, v.site, 1, True, False)
            _wait_hits(state.shm.view, 4, 50)
        finally:
            s.detach()
        assert _text(sp.proc.pid, v.site.address, 64) == pristine
        _contiguous(state.shm.view, 4)
        state.shm.close()
    assert sp.finish().startswith("calls=")

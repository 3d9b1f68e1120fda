"""Stacks unwound by call-frame information, frame by frame against gdb's own frames at
the same stop: an -O2 -fomit-frame-pointer program (ten nested calls, one inlined, the
same chain again inside a signal handler that interrupted raise(); again with return
probes' trampolines on the stack), a library constructor run by the dynamic linker, and
libc's write() called from python3.11. Both tools run the program with ASLR off, so pcs compare
directly. gdb's tail-call frames are left out: they are reconstructed from DWARF call-site
records and have no frame on the stack."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from programs.gdb_frames import GdbFrame, gdb_stacks

from runtime.elfsyms import ElfFile
from runtime.output.values import Frame
from runtime.resolve import resolve_uprobe
from runtime.session import Session

FLAGS = ("-O2", "-fomit-frame-pointer")
NOASLR = ["setarch", "x86_64", "-R"]

pytestmark = pytest.mark.skipif(not shutil.which("gdb") or not shutil.which("setarch"),
                                reason="needs gdb and setarch")


@pytest.fixture(scope="module")
def deep(builder) -> Path:
    return builder.build("stack_deep.c", *FLAGS)


def our_stacks(argv: list[str], target: str, func: str, reaper,
               keep=lambda frames: True, returns: tuple[str, ...] = ()) -> list[list[Frame]]:
    """Every stack at `func`'s entry, symbolised as `ustack` prints them; `returns` are
    functions that get a return probe too (their return addresses on the stack are then
    our trampoline's)."""
    s = Session.spawn([*NOASLR, *argv])
    reaper.add(s.pid)
    stacks: list[list[Frame]] = []

    def hit(ctx) -> None:
        frames = list(ctx.session.stacks.frames(tuple(ctx.capture_stack(127))))
        if keep(frames):
            stacks.append(frames)

    for placement in resolve_uprobe(target, func, pid=s.pid):
        s.add_probe(placement, hit)
    for name in returns:
        for placement in resolve_uprobe(target, name, pid=s.pid, want_return=True):
            s.add_probe(placement, lambda ctx: None, kind="return")
    try:
        assert s.run().code == 0
    finally:
        s.detach()
    return stacks


def aliases(module: str | None, a: str, b: str) -> bool:
    """Whether two names label the same function (write / __GI___libc_write)."""
    if a == b:
        return True
    if not module:
        return False
    elf = ElfFile.open(module)
    return bool({s.vaddr for s in elf.functions_named(a)} & {s.vaddr for s in elf.functions_named(b)})


def assert_same(ours: list[Frame], theirs: list[GdbFrame]) -> None:
    theirs = [f for f in theirs if f[2] != "tailcall"]
    want = [(hex(pc), name) for pc, name, _ in theirs]
    got = [(hex(f.address), f.symbol) for f in ours]
    assert [pc for pc, _ in got] == [pc for pc, _ in want], f"ours {got}\ngdb  {want}"
    for f, (_, name, _) in zip(ours, theirs, strict=True):
        assert f.symbol is not None and aliases(f.module, f.symbol, name), (f, name)


@pytest.mark.timeout(240)
def test_omit_frame_pointer_nested_inlined_and_signal_frames_match_gdb(deep, reaper,
                                                                       tmp_path) -> None:
    ours = our_stacks([str(deep), "1"], str(deep), "leaf", reaper)
    theirs = gdb_stacks([str(deep), "1"], "leaf", 2, tmp_path)
    assert len(ours) == 2
    for mine, gdb in zip(ours, theirs, strict=True):
        assert_same(mine, gdb)
    plain, through_signal = ours
    names = [f.symbol for f in plain]
    # Ten nested calls, the inlined one shown as a frame of its own at f9's pc.
    assert names[:12] == ["leaf", "folded", "f9", "f8", "f7", "f6", "f5", "f4", "f3", "f2",
                          "f1", "main"]
    assert plain[1].address == plain[2].address
    names = [f.symbol for f in through_signal]
    assert names[:8] == ["leaf", "folded", "f9", "f8", "f7", "f6", "f5", "on_usr1"]
    assert names[8] == "__restore_rt"
    assert "interrupted" in names and names.index("interrupted") > 8
    assert names[-1] == "_start" and names[-2].startswith("__libc_start_main")


@pytest.mark.timeout(240)
def test_return_probe_trampolines_on_the_stack_unwind_as_the_real_callers(deep, reaper,
                                                                           tmp_path) -> None:
    # f7 and f3 have return probes: while leaf runs, their return addresses on the stack
    # point at our trampoline; the stack must still read as gdb's without any probes.
    ours = our_stacks([str(deep), "1"], str(deep), "leaf", reaper, returns=("f7", "f3"))
    theirs = gdb_stacks([str(deep), "1"], "leaf", 2, tmp_path)
    for mine, gdb in zip(ours, theirs, strict=True):
        assert_same(mine, gdb)


@pytest.mark.timeout(240)
def test_stack_through_the_dynamic_linker_matches_gdb(builder, reaper, tmp_path) -> None:
    # A constructor run by dlopen: the frames between it and main are ld.so's and libc's.
    lib = builder.build("stack_ctor_lib.c", "-O2", shared=True)
    host = builder.build("stack_ctor_host.c", "-O2")
    argv = [str(host), str(lib)]
    ours = our_stacks(argv, str(lib), "ctor_probe", reaper)
    theirs = gdb_stacks(argv, "ctor_probe", 1, tmp_path)
    assert len(ours) == 1
    assert_same(ours[0], theirs[0])
    modules = {f.module for f in ours[0]}
    assert any(m and "ld-linux" in m for m in modules), modules


def real_python() -> str | None:
    exe = shutil.which("python3.11")
    if exe is None:
        return None
    done = subprocess.run([exe, "-c", "import sys; print(sys.executable)"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


@pytest.mark.timeout(300)
def test_libc_write_called_from_python_matches_gdb(reaper, tmp_path) -> None:
    py = real_python()
    if py is None:
        pytest.skip("no python3.11")
    argv = [py, "-c", "import os; os.write(1, b'unwound\\n')"]
    ours = our_stacks(argv, "libc", "write", reaper,
                      keep=lambda fr: any(f.symbol == "os_write" for f in fr))
    theirs = gdb_stacks(argv, "write", 1, tmp_path)
    assert len(ours) == 1
    assert_same(ours[0], theirs[0])
    names = [f.symbol for f in ours[0]]
    assert "_PyEval_EvalFrameDefault" in names and names[-1] == "_start"

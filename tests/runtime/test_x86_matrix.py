"""The instruction matrix program (tests/programs/insn_matrix.S) against the analysis.

Two checks that need no runtime beyond runtime.x86: every site in the compiled program is
classified as the program says, and every probe-able site's slot, run natively under a
minimal ptrace loop (int3 at each site, emulate or jump to the slot, no single-step),
leaves the program's output identical to the uninstrumented run with the expected hits.
The slots live in the program's own `xol_area`, so this isolates the slot code from the
XOL injection; tests/runtime/test_insn_matrix.py repeats the run through the Session.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from programs.matrix_sites import REFUSED_REASONS, Site, read_sites
from ptrace.binding import ptrace_cont, ptrace_getregs, ptrace_setregs, ptrace_traceme

from runtime.x86.analyse import analyse


@dataclass(frozen=True)
class Matrix:
    path: Path
    pie: bool
    sites: tuple[Site, ...] = field(repr=False)
    functions: frozenset[str] = field(repr=False)
    xol_vaddr: int
    xol_size: int
    text: bytes = field(repr=False)
    text_vaddr: int

    def code_at(self, vaddr: int) -> bytes:
        o = vaddr - self.text_vaddr
        return self.text[o : o + 16]


def load_matrix(path: Path) -> Matrix:
    """Sites, expectations and the xol area from the program's symbols and .insn_matrix."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        symbols = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
        text = elf.get_section_by_name(".text")
        xol = symbols["xol_area"]
        return Matrix(
            path=path,
            pie=elf["e_type"] == "ET_DYN",
            sites=tuple(read_sites(path)),
            functions=frozenset(n[2:] for n in symbols if n.startswith("m_")),
            xol_vaddr=xol["st_value"],
            xol_size=xol["st_size"],
            text=text.data(),
            text_vaddr=text["sh_addr"],
        )


@pytest.fixture(scope="module", params=["pie", "no-pie"])
def matrix(request: pytest.FixtureRequest, builder) -> Matrix:
    flags = ("-no-pie",) if request.param == "no-pie" else ("-pie",)
    return load_matrix(builder.build("insn_matrix.S", *flags))


@pytest.fixture(scope="module")
def expected_output(matrix: Matrix) -> str:
    run = subprocess.run([str(matrix.path)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_matrix_covers_the_classes(matrix: Matrix) -> None:
    probed = [s for s in matrix.sites if s.cls != "refused"]
    assert len(probed) >= 80
    assert len({s.name for s in matrix.sites}) == len(matrix.sites)
    assert {s.cls for s in probed} == {
        "plain", "rip_relative", "jmp_rel", "jcc", "loop", "jrcxz", "call_rel",
        "call_indirect", "jmp_indirect", "ret", "nop", "pushf", "popf",
    }  # fmt: skip
    assert {s.name for s in matrix.sites if s.cls == "refused"} == set(REFUSED_REASONS)


def test_uninstrumented_output_has_one_line_per_function(
    matrix: Matrix, expected_output: str
) -> None:
    lines = expected_output.splitlines()
    names = [ln.split()[0] for ln in lines]
    assert len(names) == len(set(names))
    assert set(names) == matrix.functions
    assert lines[0].split() == ["rip_load", hex(0x1122334455667788 ^ 0x55)]
    # The call sites' helper saw its own call site's return address.
    calls = [ln.split() for ln in lines if ln.startswith("call_")]
    assert calls and all(int(v, 16) & 0xF000 == 0x1000 for _n, v in calls)


def test_every_site_is_classified_as_the_program_says(matrix: Matrix) -> None:
    for site in matrix.sites:
        ops = analyse(matrix.code_at(site.vaddr), site.vaddr)
        assert ops.cls == site.cls, (site.name, ops.text)
        if site.cls == "refused":
            assert ops.refused is not None
            assert REFUSED_REASONS[site.name] in ops.refused, ops.refused
            assert ops.refused.startswith(f"cannot probe {site.vaddr:#x} (")
        else:
            assert ops.refused is None


class ProcMemory:
    """The tracee's memory through /proc/PID/mem, as emulation expects it."""

    def __init__(self, pid: int) -> None:
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)

    def read(self, addr: int, n: int) -> bytes:
        return os.pread(self.fd, n, addr)

    def write(self, addr: int, data: bytes) -> None:
        assert os.pwrite(self.fd, data, addr) == len(data)

    def close(self) -> None:
        os.close(self.fd)


def load_bias(pid: int, matrix: Matrix) -> int:
    if not matrix.pie:
        return 0
    real = os.path.realpath(matrix.path)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
                return int(fields[0].split("-")[0], 16)
    raise AssertionError("program not mapped")


def run_with_slots(matrix: Matrix, reaper) -> tuple[str, dict[str, int]]:
    """Run the program with an int3 on every probe-able site, leaving each hit through
    the site's ops exactly as the engine contract says."""
    proc = subprocess.Popen([str(matrix.path)], stdout=subprocess.PIPE, preexec_fn=ptrace_traceme)
    pid = reaper.add(proc.pid)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGTRAP
    bias = load_bias(pid, matrix)
    mem = ProcMemory(pid)
    placed = {}
    next_slot = bias + matrix.xol_vaddr
    for site in matrix.sites:
        if site.cls == "refused":
            continue
        addr = bias + site.vaddr
        ops = analyse(mem.read(addr, 16), addr)
        slot = 0
        if ops.slot_size:
            slot = next_slot
            code = ops.build_slot(slot)
            assert len(code) <= ops.slot_size
            mem.write(slot, code)
            next_slot += (ops.slot_size + 15) & ~15
        placed[addr] = (site.name, ops, slot)
    assert next_slot <= bias + matrix.xol_vaddr + matrix.xol_size
    for addr in placed:
        mem.write(addr, b"\xcc")
    hits = dict.fromkeys((name for name, _o, _s in placed.values()), 0)
    sig = 0
    try:
        while True:
            ptrace_cont(pid, sig)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status):
                assert os.WEXITSTATUS(status) == 0
                break
            assert not os.WIFSIGNALED(status), f"killed by signal {os.WTERMSIG(status)}"
            sig = os.WSTOPSIG(status)
            if sig != signal.SIGTRAP:
                regs = ptrace_getregs(pid)
                raise AssertionError(f"signal {sig} at {regs.rip:#x}")
            regs = ptrace_getregs(pid)
            name, ops, slot = placed[regs.rip - 1]
            hits[name] += 1
            if not ops.emulate(regs, mem):
                regs.rip = slot
            ptrace_setregs(pid, regs)
            sig = 0
    finally:
        mem.close()
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.wait()
    return out, hits


@pytest.mark.timeout(60)
def test_slots_and_emulation_reproduce_the_uninstrumented_run(
    matrix: Matrix, expected_output: str, reaper
) -> None:
    out, hits = run_with_slots(matrix, reaper)
    expected_hits = {s.name: s.hits for s in matrix.sites if s.cls != "refused"}
    assert hits == expected_hits
    assert out.splitlines() == expected_output.splitlines()

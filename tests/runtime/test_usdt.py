"""USDT notes against `readelf -n`, argument specs, and argument values in a live process."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from runtime.elfsyms import ElfFile
from runtime.errors import MemoryReadError, ResolveError
from runtime.usdt import UsdtArg, read_probes, register_value

pytestmark = pytest.mark.timeout(60)

PYTHON = "/usr/bin/python3.11"


def readelf_notes(path: Path | str) -> list[tuple[str, str, int, int, int, str]]:
    """(provider, name, location, base, semaphore, arguments) per stapsdt note."""
    out = subprocess.run(["readelf", "-nW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    notes: list[tuple[str, str, int, int, int, str]] = []
    cur: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.split("\t")[-1].strip().partition(":")
        if key == "Provider":
            cur = {"provider": value.strip()}
        elif key == "Name" and cur:
            cur["name"] = value.strip()
        elif key == "Location" and cur:
            parts = dict(p.strip().split(": ") for p in line.strip().split(", "))
            cur.update(loc=parts["Location"], base=parts["Base"], sema=parts["Semaphore"])
        elif key == "Arguments" and cur:
            notes.append((cur["provider"], cur["name"], int(cur["loc"], 16),
                          int(cur["base"], 16), int(cur["sema"], 16), value.strip()))
            cur = {}
    return notes


def section_of(path: Path, name: str) -> tuple[int, int]:
    out = subprocess.run(["readelf", "-SW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        f = line.split("]", 1)[-1].split()
        if f and f[0] == name:
            return int(f[2], 16), int(f[3], 16)
    raise AssertionError(f"no section {name}")


@pytest.fixture(scope="module", params=["plain", "semaphores"])
def usdt_prog(builder, request) -> Path:
    flags = ["-O1"] + (["-DUSDT_SEMAPHORES"] if request.param == "semaphores" else [])
    return builder.build("usdt_probes.c", *flags)


def test_notes_match_readelf(usdt_prog: Path) -> None:
    probes = read_probes(str(usdt_prog))
    expected = readelf_notes(usdt_prog)
    assert [(p.provider, p.name, p.pc, p.base, p.semaphore, p.arg_spec) for p in probes] == [
        (prov, name, loc, base, sema, args) for prov, name, loc, base, sema, args in expected]
    assert [p.name for p in probes] == ["start", "values", "done"]
    text_addr, text_off = section_of(usdt_prog, ".text")
    for p in probes:
        assert p.offset == p.pc - text_addr + text_off
        assert p.args_error is None
        if p.semaphore:
            probes_addr, probes_off = section_of(usdt_prog, ".probes")
            assert p.semaphore_offset == p.semaphore - probes_addr + probes_off
        else:
            assert p.semaphore_offset is None
    elf = ElfFile.open(str(usdt_prog))
    for p in probes:
        if p.semaphore:
            assert elf.symbol_vaddr(f"usdtdemo_{p.name}_semaphore") == p.semaphore
    values = probes[1]
    assert [a.spec for a in values.args] == values.arg_spec.split()
    assert [(a.size, a.signed) for a in values.args] == [(8, True), (1, True), (2, True),
                                                         (4, False)]


def test_semaphore_build_has_semaphores(builder) -> None:
    probes = read_probes(str(builder.build("usdt_probes.c", "-O1", "-DUSDT_SEMAPHORES")))
    assert all(p.semaphore and p.semaphore_offset for p in probes)
    plain = read_probes(str(builder.build("usdt_probes.c", "-O1")))
    assert not any(p.semaphore for p in plain)


def test_file_without_notes(builder) -> None:
    assert read_probes(str(builder.build("sym_lib.c", "-O1", shared=True))) == []


SPECS = {
    "-4@%eax": dict(size=4, signed=True, kind="reg", reg="eax"),
    "8@-8(%rbp)": dict(size=8, signed=False, kind="mem", base="rbp", offset=-8),
    "8@(%rax,%rdx,8)": dict(size=8, kind="mem", base="rax", index="rdx", scale=8, offset=0),
    "4@$5": dict(size=4, signed=False, kind="imm", value=5),
    "8@symbol(%rip)": dict(size=8, kind="mem", base="rip", symbol="symbol", offset=0),
    "-1@%dil": dict(size=1, signed=True, kind="reg", reg="dil"),
    "2@%ax": dict(size=2, signed=False, kind="reg", reg="ax"),
    "8@%r12": dict(size=8, kind="reg", reg="r12"),
    "4@16(%rsp)": dict(size=4, kind="mem", base="rsp", offset=16),
    "8@$-1": dict(size=8, signed=False, kind="imm", value=-1),
    "-4@-0x10(%rbp,%rcx,4)": dict(size=4, signed=True, kind="mem", base="rbp", index="rcx",
                                  scale=4, offset=-16),
    "8@sym+8(%rip)": dict(kind="mem", base="rip", symbol="sym", offset=8),
    "4@(,%rax,4)": dict(kind="mem", base=None, index="rax", scale=4),
}


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_parse_specs(spec: str) -> None:
    arg = UsdtArg.parse(spec)
    for field, want in SPECS[spec].items():
        assert getattr(arg, field) == want, field
    assert arg.spec == spec


@pytest.mark.parametrize("spec", ["3@%eax", "x@%eax", "8@%xmm0", "8@%fs:0x28", "8@$abc",
                                  "8@sym(%rbx)"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(ResolveError, match="USDT argument"):
        UsdtArg.parse(spec)


REGS = SimpleNamespace(
    rax=0x1122334455667788, rbx=0xFFFFFFFFFFFFFFFF, rcx=3, rdx=0x8000, rsi=0, rdi=0x80,
    rbp=0x7000, rsp=0x6000, r8=0xAAAAAAAABBBBBBBB, r9=0, r10=0, r11=0, r12=42, r13=0, r14=0,
    r15=0, rip=0x401000,
)


def test_register_parts() -> None:
    assert register_value(REGS, "eax") == 0x55667788
    assert register_value(REGS, "ax") == 0x7788
    assert register_value(REGS, "al") == 0x88
    assert register_value(REGS, "ah") == 0x77
    assert register_value(REGS, "r8d") == 0xBBBBBBBB
    assert register_value(REGS, "r8w") == 0xBBBB
    assert register_value(REGS, "r8b") == 0xBB
    assert register_value(REGS, "dil") == 0x80
    assert register_value(REGS, "rip") == 0x401000


def test_evaluate_without_a_process() -> None:
    memory = {0x7000 - 8: (-2).to_bytes(8, "little", signed=True),
              0x7000 - 16 + 3 * 4: (0xFFFFFFF0).to_bytes(4, "little"),
              0x6010: (7).to_bytes(4, "little")}

    def read(addr: int, n: int) -> bytes:
        if addr not in memory:
            raise MemoryReadError(f"cannot read {addr:#x}", addr)
        return memory[addr][:n]

    def ev(spec: str) -> int:
        return UsdtArg.parse(spec).evaluate(REGS, read)

    assert ev("-4@%eax") == 0x55667788
    assert ev("-4@%ebx") == -1 and ev("4@%ebx") == 0xFFFFFFFF
    assert ev("-1@%dil") == -128 and ev("1@%dil") == 128
    assert ev("-2@%ax") == 0x7788 and ev("8@%r12") == 42
    assert ev("-8@-8(%rbp)") == -2 and ev("8@-8(%rbp)") == 2**64 - 2
    assert ev("-4@-0x10(%rbp,%rcx,4)") == -16
    assert ev("4@16(%rsp)") == 7
    assert ev("4@$5") == 5 and ev("-4@$-5") == -5 and ev("8@$-1") == 2**64 - 1
    with pytest.raises(MemoryReadError) as err:
        ev("8@(%rax)")
    assert err.value.address == REGS.rax


def test_rip_symbol_needs_the_elf(usdt_prog: Path) -> None:
    elf = ElfFile.open(str(usdt_prog))
    arg = UsdtArg.parse("-8@usdt_global(%rip)")
    want = elf.symbol_vaddr("usdt_global") + 0x1000
    seen = []

    def read(addr: int, n: int) -> bytes:
        seen.append((addr, n))
        return (-5).to_bytes(8, "little", signed=True)

    assert arg.evaluate(REGS, read, elf, bias=0x1000) == -5
    assert seen == [(want, 8)]
    with pytest.raises(ResolveError, match="needs the ELF"):
        arg.evaluate(REGS, read)
    with pytest.raises(ResolveError, match="no symbol 'nope'"):
        UsdtArg.parse("8@nope(%rip)").evaluate(REGS, read, elf)


def test_prelink_shift_moves_pc_and_semaphore(builder, tmp_path: Path) -> None:
    """A prelinked file's .stapsdt.base moved but its notes did not: shift by the difference."""
    src = builder.build("usdt_probes.c", "-O1", "-DUSDT_SEMAPHORES")
    original = read_probes(str(src))
    data = bytearray(src.read_bytes())
    _, note_off = section_of(src, ".note.stapsdt")
    # Rewrite every note's base to 0x100 below the section: the reader must add 0x100.
    pos = note_off
    for probe in original:
        namesz, descsz, _type = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + ((namesz + 3) & ~3)
        pc, base, sema = struct.unpack_from("<QQQ", data, desc)
        assert (pc, base) == (probe.pc, probe.base)
        struct.pack_into("<QQQ", data, desc, pc - 0x100, base - 0x100, sema - 0x100)
        pos = desc + ((descsz + 3) & ~3)
    moved = tmp_path / "prelinked"
    moved.write_bytes(bytes(data))
    shifted = read_probes(str(moved))
    assert [(p.pc, p.semaphore, p.offset) for p in shifted] == [
        (p.pc, p.semaphore, p.offset) for p in original]
    assert [p.base for p in shifted] == [p.base - 0x100 for p in original]


def test_python_probes_all_parse() -> None:
    if not os.path.exists(PYTHON):
        pytest.skip(f"{PYTHON} not installed")
    probes = read_probes(PYTHON)
    expected = readelf_notes(PYTHON)
    assert len(probes) == len(expected) >= 8
    assert [(p.provider, p.name, p.pc, p.semaphore, p.arg_spec) for p in probes] == [
        (prov, name, loc, sema, args) for prov, name, loc, _b, sema, args in expected]
    names = {p.name for p in probes}
    assert {"function__entry", "function__return", "line", "gc__start"} <= names
    elf = ElfFile.open(PYTHON)
    for p in probes:
        assert p.args_error is None and len(p.args) == len(p.arg_spec.split())
        assert p.semaphore and p.semaphore_offset == elf.vaddr_to_offset(p.semaphore)
        assert elf.read(p.offset, 1) == b"\x90"  # USDT sites are nops


def test_arguments_in_a_live_process(builder, reaper) -> None:
    """Stop the program at each probe with a plain breakpoint and compare the evaluated
    arguments with the values the C code passed."""
    from ptrace.debugger import PtraceDebugger
    from ptrace.debugger.child import createChild

    from runtime.procmaps import read_maps

    prog = builder.build("usdt_probes.c", "-O1", "-fPIE", "-pie")
    elf = ElfFile.open(str(prog))
    probes = {p.name: p for p in read_probes(str(prog))}
    debugger = PtraceDebugger()
    devnull = os.open(os.devnull, os.O_RDONLY)
    saved = os.dup(0)
    os.dup2(devnull, 0)  # the child reads stdin until EOF at the end
    try:
        pid = reaper.add(createChild([str(prog)], no_stdout=True))
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(devnull)
    try:
        process = debugger.addProcess(pid, is_attached=True)
        bias = elf.load_bias(pid, read_maps(pid))
        got = {}
        for name in ("values", "done"):
            bp = process.createBreakpoint(probes[name].pc + bias)
            process.cont()
            process.waitSignals(signal.SIGTRAP)
            regs = process.getregs()
            assert regs.rip - 1 == probes[name].pc + bias
            got[name] = [a.evaluate(regs, process.readBytes, elf, bias) for a in probes[name].args]
            bp.desinstall(set_ip=True)
        assert got["values"] == [42, -3, -1000, 4000000000]
        assert got["done"] == [42 * 7, -123456789012345, -5]
    finally:
        debugger.quit()


def test_copy_keeps_probes(builder, tmp_path: Path) -> None:
    src = builder.build("usdt_probes.c", "-O1")
    dst = tmp_path / "copy"
    shutil.copy(src, dst)
    assert [(p.name, p.pc) for p in read_probes(str(dst))] == [
        (p.name, p.pc) for p in read_probes(str(src))]
    with pytest.raises(ResolveError, match="has 4 arguments, no arg4"):
        read_probes(str(dst))[1].arg(4)

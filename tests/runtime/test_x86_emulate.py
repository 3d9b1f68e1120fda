"""Emulated classes on fake registers and memory: jcc against the SDM flag rules, jmp,
nops, pushf/popf; slot classes leave everything alone."""

from __future__ import annotations

import itertools
import struct

import pytest
from ptrace.binding.linux_struct import user_regs_struct

from runtime.errors import PlacementError
from runtime.x86 import encode, flags
from runtime.x86.analyse import analyse

SITE = 0x401000


class FakeMemory:
    """A sparse byte store that records every write."""

    def __init__(self) -> None:
        self.bytes: dict[int, int] = {}
        self.writes: list[tuple[int, bytes]] = []

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.bytes[addr + i] for i in range(n))

    def write(self, addr: int, data: bytes) -> None:
        self.writes.append((addr, bytes(data)))
        for i, b in enumerate(data):
            self.bytes[addr + i] = b


def regs(eflags: int = 0x202, rsp: int = 0x7FFF_FFFF_E000, rcx: int = 0) -> user_regs_struct:
    r = user_regs_struct()
    # After the int3 the kernel reports rip one past the site.
    r.rip, r.rsp, r.rcx, r.eflags = SITE + 1, rsp, rcx, eflags
    return r


def ops_for(hexcode: str):
    return analyse(bytes.fromhex(hexcode) + b"\x90" * 16, SITE)


# The SDM's condition-code table, written the other way round: the low bit of the
# condition nibble negates, the upper three pick the base test.
def sdm_condition(cc: int, f: int) -> bool:
    cf, pf, zf, sf, of = (bool(f & b) for b in (flags.CF, flags.PF, flags.ZF, flags.SF, flags.OF))
    base = [of, cf, zf, cf or zf, sf, pf, sf != of, zf or (sf != of)][cc >> 1]
    return base != bool(cc & 1)


FLAG_SETS = [
    0x202
    | sum(
        bit
        for bit, on in zip((flags.CF, flags.PF, flags.ZF, flags.SF, flags.OF), bits, strict=True)
        if on
    )
    for bits in itertools.product((0, 1), repeat=5)
]


@pytest.mark.parametrize("cc", range(16))
@pytest.mark.parametrize("form", ["rel8", "rel32"])
def test_jcc_follows_the_flag_rules(cc: int, form: str) -> None:
    if form == "rel8":
        code, length, disp = bytes([0x70 | cc, 0x20]).hex(), 2, 0x20
    else:
        code, length, disp = bytes([0x0F, 0x80 | cc]).hex() + "00f0ffff", 6, -0x1000
    ops = ops_for(code)
    assert ops.cls == "jcc" and ops.slot_size == 0
    for f in FLAG_SETS:
        r = regs(eflags=f)
        mem = FakeMemory()
        assert ops.emulate(r, mem) is True
        expected = SITE + length + disp if sdm_condition(cc, f) else SITE + length
        assert r.rip == expected, (hex(f), ops.text)
        assert r.eflags == f and r.rsp == regs().rsp and not mem.writes


@pytest.mark.parametrize(
    ("code", "target"),
    [
        ("eb10", SITE + 2 + 0x10),
        ("ebfe", SITE),
        ("e900f0ffff", SITE + 5 - 0x1000),
        ("f2eb10", SITE + 3 + 0x10),
    ],
)
def test_jmp_rel_sets_rip(code: str, target: int) -> None:
    ops = ops_for(code)
    r = regs()
    assert ops.emulate(r, FakeMemory()) is True
    assert r.rip == target


@pytest.mark.parametrize(
    "code", ["90", "6690", "0f1f440000", "662e0f1f840000000000", "f30f1efa", "f30f1efb"]
)
def test_nops_step_over(code: str) -> None:
    ops = ops_for(code)
    r = regs(eflags=0x297)
    mem = FakeMemory()
    assert ops.emulate(r, mem) is True
    assert r.rip == SITE + len(bytes.fromhex(code))
    assert (r.eflags, r.rsp, mem.writes) == (0x297, regs().rsp, [])


def test_pushf_pushes_the_program_flags_without_rf_and_vm() -> None:
    ops = ops_for("9c")
    f = 0x202 | flags.CF | flags.ZF | flags.DF | flags.RF | flags.VM | flags.AC
    r = regs(eflags=f)
    mem = FakeMemory()
    assert ops.emulate(r, mem) is True
    assert r.rsp == regs().rsp - 8 and r.rip == SITE + 1
    assert mem.writes == [(r.rsp, struct.pack("<Q", f & ~(flags.RF | flags.VM)))]
    assert r.eflags == f


def test_pushf16_pushes_two_bytes() -> None:
    ops = ops_for("669c")
    r = regs(eflags=0x10A93)
    mem = FakeMemory()
    assert ops.emulate(r, mem) is True
    assert r.rsp == regs().rsp - 2 and r.rip == SITE + 2
    assert mem.writes == [(r.rsp, struct.pack("<H", 0x0A93))]


def test_popf_takes_only_user_writable_flags() -> None:
    ops = ops_for("9d")
    r = regs(eflags=0x202 | flags.ID)  # ID unchanged: an ID change runs from the slot
    mem = FakeMemory()
    # Everything set on the stack: IF, IOPL and VM must not follow.
    mem.write(r.rsp, struct.pack("<Q", 0xFFFF_FFFF_FFFF_FFFF))
    assert ops.emulate(r, mem) is True
    assert r.rsp == regs().rsp + 8 and r.rip == SITE + 1
    assert r.eflags == 0x202 | flags.POPF_WRITABLE
    assert not r.eflags & (flags.VM | flags.RF | (3 << 12))
    # And clearing works: IF stays set, the rest go.
    r = regs(eflags=0x202 | flags.CF | flags.ZF | flags.OF)
    mem.write(r.rsp, struct.pack("<Q", 0))
    ops.emulate(r, mem)
    assert r.eflags == 0x202


def test_popf_changing_id_runs_natively_from_its_slot() -> None:
    # PTRACE_SETREGS cannot change ID (bit 21): `push $0x200202; popf; pushf` must read
    # back 0x200202, so such a popf leaves registers alone and the slot runs it.
    ops = ops_for("9d")
    mem = FakeMemory()
    r = regs(eflags=0x202)
    mem.write(r.rsp, struct.pack("<Q", 0x200202))
    assert ops.emulate(r, mem) is False
    assert (r.eflags, r.rsp, r.rip) == (0x202, regs().rsp, regs().rip)
    assert ops.build_slot(0x1000) == bytes.fromhex("9d") + encode.abs_jmp(SITE + 1)
    # Unchanged ID: emulated as before.
    r = regs(eflags=0x200202)
    mem.write(r.rsp, struct.pack("<Q", 0x200202 | flags.CF))
    assert ops.emulate(r, mem) is True and r.eflags == 0x200202 | flags.CF


def test_pushf_then_popf_round_trips() -> None:
    mem = FakeMemory()
    f = 0x202 | flags.SF | flags.PF | flags.AF
    r = regs(eflags=f)
    ops_for("9c").emulate(r, mem)
    r.eflags = 0x202
    r.rip = SITE + 1
    ops_for("9d").emulate(r, mem)
    assert (r.eflags, r.rsp) == (f, regs().rsp)


def test_popf16_replaces_the_low_half_only() -> None:
    ops = ops_for("669d")
    r = regs(eflags=0x202 | flags.AC)
    mem = FakeMemory()
    mem.write(r.rsp, struct.pack("<H", flags.CF | flags.OF | flags.IF))
    assert ops.emulate(r, mem) is True
    assert r.rsp == regs().rsp + 2 and r.rip == SITE + 2
    # AC lives above bit 15 and stays; IF is not user-writable and stays set.
    assert r.eflags == 0x202 | flags.AC | flags.CF | flags.OF


@pytest.mark.parametrize(
    "code", ["4889e5", "488b0510000000", "e810000000", "e210", "e310", "c3", "ffe0", "ffd0"]
)
def test_slot_classes_do_not_emulate(code: str) -> None:
    ops = ops_for(code)
    r = regs(eflags=0x246)
    mem = FakeMemory()
    assert ops.emulate(r, mem) is False
    assert (r.rip, r.rsp, r.eflags, mem.writes) == (SITE + 1, regs().rsp, 0x246, [])
    assert ops.slot_size > 0


def test_refused_sites_cannot_be_emulated() -> None:
    with pytest.raises(PlacementError, match="system call"):
        ops_for("0f05").emulate(regs(), FakeMemory())

"""Site analysis: bytes in -> class, length, refusal reason and slot code (decoded back)."""

from __future__ import annotations

import struct

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from runtime.errors import PlacementError
from runtime.x86.analyse import analyse

SITE = 0x5555_5555_4000
SLOT = SITE + 0x10_0000  # near enough to SITE for rel32


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def site(text: str, address: int = SITE):
    # Padding after the instruction, as the engine reads 16 bytes from the site.
    return analyse(h(text) + b"\xcc" * 16, address)


def disasm(code: bytes, address: int) -> list:
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    return list(md.disasm(code, address))


def abs_jmp_target(code: bytes, at: int) -> int:
    """The target of the `jmp [rip+0]; .quad` exit starting at offset `at`."""
    assert code[at : at + 6] == h("ff2500000000")
    return struct.unpack_from("<Q", code, at + 6)[0]


CLASSES = [
    # plain
    ("4889e5", "plain", 3),  # mov rbp, rsp
    ("55", "plain", 1),  # push rbp
    ("4883ec10", "plain", 4),  # sub rsp, 0x10
    ("64488b042528000000", "plain", 9),  # mov rax, fs:[0x28]
    ("65488b042510000000", "plain", 9),  # mov rax, gs:[0x10]
    ("f00fc107", "plain", 4),  # lock xadd [rdi], eax
    ("f0480fb10f", "plain", 5),  # lock cmpxchg [rdi], rcx
    ("f3a4", "plain", 2),  # rep movsb
    ("f348ab", "plain", 3),  # rep stosq
    ("0fa2", "plain", 2),  # cpuid
    ("480f44c1", "plain", 4),  # cmove rax, rcx
    ("0f94c0", "plain", 3),  # sete al
    ("48f7f1", "plain", 3),  # div rcx
    ("4887d8", "plain", 3),  # xchg rax, rbx
    ("4190", "plain", 2),  # xchg r8d, eax: not a nop
    ("f390", "plain", 2),  # pause
    ("c5f96f07", "plain", 4),  # vmovdqa xmm0, [rdi]
    ("62f1fe486f07", "plain", 6),  # vmovdqu64 zmm0, [rdi]
    ("c8100000", "plain", 4),  # enter 0x10, 0
    ("c9", "plain", 1),  # leave
    ("488b442408", "plain", 5),  # mov rax, [rsp+8]
    ("48a11000000000000000", "plain", 10),  # movabs rax, [0x10]
    ("0f31", "plain", 2),  # rdtsc
    ("480fa3c8", "plain", 4),  # bt rax, rcx
    ("480fafc1", "plain", 4),  # imul rax, rcx
    # RIP-relative
    ("488b0510000000", "rip_relative", 7),  # mov rax, [rip+0x10]
    ("48890510000000", "rip_relative", 7),  # mov [rip+0x10], rax
    ("803d1000000005", "rip_relative", 7),  # cmp byte [rip+0x10], 5
    ("813d1000000045230100", "rip_relative", 10),  # cmp dword [rip+0x10], 0x12345
    ("488d0510000000", "rip_relative", 7),  # lea rax, [rip+0x10]
    ("ff3510000000", "rip_relative", 6),  # push [rip+0x10]
    ("8f0510000000", "rip_relative", 6),  # pop [rip+0x10]
    ("f30f6f0510000000", "rip_relative", 8),  # movdqu xmm0, [rip+0x10]
    ("c5fe6f0510000000", "rip_relative", 8),  # vmovdqu ymm0, [rip+0x10]
    ("f20f580510000000", "rip_relative", 8),  # addsd xmm0, [rip+0x10]
    ("62f1fe486f0510000000", "rip_relative", 10),  # vmovdqu64 zmm0, [rip+0x10]
    ("64488b0510000000", "rip_relative", 8),  # mov rax, fs:[rip+0x10]
    ("48c7051000000078563412", "rip_relative", 11),  # mov qword [rip+0x10], imm32
    # relative branches
    ("eb10", "jmp_rel", 2),
    ("e910000000", "jmp_rel", 5),
    ("7410", "jcc", 2),
    ("0f8410000000", "jcc", 6),
    ("e810000000", "call_rel", 5),
    ("e210", "loop", 2),
    ("e110", "loop", 2),  # loope
    ("e010", "loop", 2),  # loopne
    ("67e210", "loop", 3),  # loop with ecx
    ("e310", "jrcxz", 2),
    ("67e310", "jrcxz", 3),  # jecxz
    ("f2eb10", "jmp_rel", 3),  # bnd jmp
    # indirect / return
    ("c3", "ret", 1),
    ("c20800", "ret", 3),
    ("f3c3", "ret", 2),  # repz ret
    ("f2c3", "ret", 2),  # bnd ret
    ("ffe0", "jmp_indirect", 2),
    ("3effe0", "jmp_indirect", 3),  # notrack jmp rax
    ("41ffe3", "jmp_indirect", 3),
    ("ff2510000000", "jmp_indirect", 6),
    ("ff24c5 00104000", "jmp_indirect", 7),  # jmp [rax*8+0x401000]
    ("ffd0", "call_indirect", 2),
    ("41ffd3", "call_indirect", 3),
    ("ff1510000000", "call_indirect", 6),
    ("ff542408", "call_indirect", 4),
    ("ff1424", "call_indirect", 3),
    ("ff10", "call_indirect", 2),
    # no-ops
    ("90", "nop", 1),
    ("6690", "nop", 2),
    ("0f1f00", "nop", 3),
    ("0f1f4000", "nop", 4),
    ("0f1f440000", "nop", 5),
    ("660f1f440000", "nop", 6),
    ("0f1f8000000000", "nop", 7),
    ("0f1f840000000000", "nop", 8),
    ("660f1f840000000000", "nop", 9),
    ("662e0f1f840000000000", "nop", 10),
    ("66662e0f1f840000000000", "nop", 11),
    ("f30f1efa", "nop", 4),  # endbr64
    ("f30f1efb", "nop", 4),  # endbr32
    # flags
    ("9c", "pushf", 1),
    ("669c", "pushf", 2),
    ("9d", "popf", 1),
    ("669d", "popf", 2),
]


@pytest.mark.parametrize(("code", "cls", "length"), CLASSES)
def test_class_and_length(code: str, cls: str, length: int) -> None:
    ops = site(code)
    assert (ops.cls, ops.length, ops.refused) == (cls, length, None)
    first = disasm(h(code), SITE)[0]
    assert ops.text == f"{first.mnemonic} {first.op_str}".strip()


REFUSED = [
    ("cc", "int3", "already holds an int3: another debugger or a probe placed by someone else"),
    ("f1", "int1", "software interrupts"),
    ("cd80", "int 0x80", "software interrupts"),
    ("0f05", "syscall", "system call instructions cannot run out of line"),
    ("0f34", "sysenter", "system call"),
    ("0f35", "sysexit", "system call"),
    ("0f07", "sysret", "system call"),
    ("f4", "hlt", "privileged"),
    ("e460", "in al, 0x60", "port I/O"),
    ("ec", "in al, dx", "port I/O"),
    ("e660", "out 0x60, al", "port I/O"),
    ("ee", "out dx, al", "port I/O"),
    ("6c", "insb byte ptr [rdi], dx", "port I/O"),
    ("6e", "outsb dx, byte ptr [rsi]", "port I/O"),
    ("48cf", "iretq", "interrupt returns"),
    ("ff2c24", "jmp ptr [rsp]", "far transfers"),
    ("ff1c24", "call ptr [rsp]", "far transfers"),
    ("cb", "retf", "far transfers"),
    ("ca0800", "retf 8", "far transfers"),
    ("0f0b", "ud2", "#UD on purpose"),
    ("0fff", "ud0", "#UD on purpose"),
    ("0fb9", "ud1", "#UD on purpose"),
    ("8ed0", "mov ss, eax", "loading SS"),
    ("0fb210", "lss edx, ptr [rax]", "loading SS"),
    ("c7f800000000", "xbegin", "transactional memory"),
    ("c6f800", "xabort 0", "transactional memory"),
    ("fa", "cli", "privileged"),
    ("0f01f8", "swapgs", "privileged"),
    ("66e810000000", "call", "operand-size prefixed"),
    ("660f8410000000", "je", "operand-size prefixed"),
    ("ffd4", "call rsp", "into the stack"),
]


@pytest.mark.parametrize(("code", "text", "reason"), REFUSED)
def test_refused(code: str, text: str, reason: str) -> None:
    ops = site(code)
    assert ops.cls == "refused"
    assert ops.refused is not None and reason in ops.refused
    assert ops.refused.startswith(f"cannot probe {SITE:#x} ({ops.text}): ")
    assert ops.text.startswith(text.split()[0])
    with pytest.raises(PlacementError) as err:
        ops.build_slot(SLOT)
    assert err.value.message == ops.refused
    assert reason in err.value.reason


def test_refusal_message_reads_as_documented() -> None:
    ops = site("0f05", 0x401136)
    assert ops.refused == (
        "cannot probe 0x401136 (syscall): system call instructions cannot run out of line"
    )


@pytest.mark.parametrize(
    "code",
    [
        "06",  # push es: invalid in 64-bit mode
        "17",  # pop ss: invalid in 64-bit mode
        "ce",  # into: invalid in 64-bit mode
        "c5",  # lds in 32-bit mode, a truncated VEX prefix here
        "ea0000000000",  # far jmp ptr16:32: invalid in 64-bit mode
        "e810",  # call cut short by the end of the mapping
        "",
    ],
)
def test_undecodable_bytes_are_refused(code: str) -> None:
    ops = analyse(h(code), SITE)
    assert ops.cls == "refused"
    assert ops.refused is not None
    assert "do not decode as an x86-64 instruction" in ops.refused


# ---- slots -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [c for c, cls, _ in CLASSES if cls == "plain"], ids=lambda c: c)
def test_plain_slot_is_copy_and_absolute_jump_back(code: str) -> None:
    ops = site(code)
    slot = ops.build_slot(SLOT)
    assert len(slot) == ops.slot_size
    assert slot[: ops.length] == h(code)
    assert abs_jmp_target(slot, ops.length) == SITE + ops.length
    assert ops.slot_range is None


@pytest.mark.parametrize(
    "code", [c for c, cls, _ in CLASSES if cls == "rip_relative"], ids=lambda c: c
)
@pytest.mark.parametrize("slot_addr", [SLOT, SITE - 0x7000_0000, SITE + 0x7000_0000])
def test_rip_relative_slot_hits_the_same_absolute_address(code: str, slot_addr: int) -> None:
    ops = site(code)
    original = disasm(h(code), SITE)[0]
    slot = ops.build_slot(slot_addr)
    assert len(slot) == ops.slot_size
    moved = disasm(slot, slot_addr)[0]
    assert moved.size == original.size
    assert (moved.mnemonic, moved.id) == (original.mnemonic, original.id)
    # Same absolute operand address, everything but the disp32 unchanged.
    assert moved.address + moved.size + moved.disp == SITE + original.size + original.disp
    o = original.disp_offset
    assert slot[:o] == h(code)[:o]
    assert slot[o + 4 : ops.length] == h(code)[o + 4 :]
    assert abs_jmp_target(slot, ops.length) == SITE + ops.length


def test_rip_relative_keeps_the_immediate_after_the_displacement() -> None:
    ops = site("813d1000000045230100")  # cmp dword [rip+0x10], 0x12345
    moved = disasm(ops.build_slot(SLOT), SLOT)[0]
    assert moved.operands[1].imm == 0x12345
    ops = site("803d10000000fb")  # cmp byte [rip+0x10], -5
    moved = disasm(ops.build_slot(SLOT), SLOT)[0]
    assert moved.op_str.endswith("0xfb")


def test_rip_relative_slot_range_is_exact() -> None:
    ops = site("488b0510000000")
    lo, hi = ops.slot_range
    for ok in (lo, hi):
        ops.build_slot(ok)
    for bad in (lo - 1, hi + 1, SITE + (1 << 40)):
        with pytest.raises(PlacementError) as err:
            ops.build_slot(bad)
        assert "out of rel32 reach" in err.value.message
        assert err.value.message.startswith(f"cannot probe {SITE:#x} (mov rax, qword ptr [rip")


def test_jump_through_rip_is_re_aimed() -> None:
    ops = site("ff2510000000")
    slot = ops.build_slot(SLOT)
    assert len(slot) == ops.slot_size == 6
    moved = disasm(slot, SLOT)[0]
    assert moved.mnemonic == "jmp"
    assert SLOT + 6 + moved.disp == SITE + 6 + 0x10


@pytest.mark.parametrize(
    "code", ["c3", "c20800", "f3c3", "ffe0", "3effe0", "41ffe3", "ff24c500104000"]
)
def test_returns_and_indirect_jumps_are_copied_verbatim(code: str) -> None:
    ops = site(code)
    assert ops.build_slot(SLOT) == h(code)
    assert ops.slot_size == len(h(code))


def _check_push_return_address(slot: bytes, expected: int) -> list:
    insns = disasm(slot, SLOT)
    lea, lo, hi = insns[:3]
    assert (lea.mnemonic, lea.op_str) == ("lea", "rsp, [rsp - 8]")
    assert (lo.mnemonic, lo.op_str.split(",")[0]) == ("mov", "dword ptr [rsp]")
    assert (hi.mnemonic, hi.op_str.split(",")[0]) == ("mov", "dword ptr [rsp + 4]")
    pushed = (lo.operands[1].imm & 0xFFFFFFFF) | ((hi.operands[1].imm & 0xFFFFFFFF) << 32)
    assert pushed == expected
    # None of the three may change flags: the instruction after the call may read them.
    assert not any("eflags" in i.reg_name(r) for i in insns[:3] for r in i.regs_access()[1])
    return insns[3:]


@pytest.mark.parametrize("site_addr", [SITE, 0x7FFF_F7DD_1234])
def test_call_rel_pushes_the_original_return_address(site_addr: int) -> None:
    ops = site("e810000000", site_addr)
    slot = ops.build_slot(SLOT)
    assert len(slot) == ops.slot_size
    _check_push_return_address(slot, site_addr + 5)
    assert abs_jmp_target(slot, 20) == site_addr + 5 + 0x10
    assert len(slot) == 34


@pytest.mark.parametrize(
    ("code", "jmp_text"),
    [
        ("ffd0", "jmp rax"),
        ("41ffd3", "jmp r11"),
        ("ff10", "jmp qword ptr [rax]"),
        ("ff542408", "jmp qword ptr [rsp + 0x10]"),
        ("ff1424", "jmp qword ptr [rsp + 8]"),
        ("ff5424f8", "jmp qword ptr [rsp]"),
        ("ff54247c", "jmp qword ptr [rsp + 0x84]"),  # disp8 widened to disp32
        ("ff942400010000", "jmp qword ptr [rsp + 0x108]"),
        ("ff54c408", "jmp qword ptr [rsp + rax*8 + 0x10]"),
        ("41ff542408", "jmp qword ptr [r12 + 8]"),  # r12 needs a SIB too, but is not rsp
        ("64ff142510000000", "jmp qword ptr fs:[0x10]"),
    ],
)
def test_call_indirect_becomes_push_and_jump(code: str, jmp_text: str) -> None:
    ops = site(code)
    slot = ops.build_slot(SLOT)
    assert len(slot) == ops.slot_size
    rest = _check_push_return_address(slot, SITE + len(h(code)))
    assert len(rest) == 1
    assert f"{rest[0].mnemonic} {rest[0].op_str}" == jmp_text
    assert rest[0].address + rest[0].size == SLOT + len(slot)


def test_call_through_rip_reads_the_same_pointer() -> None:
    ops = site("ff1510000000")
    slot = ops.build_slot(SLOT)
    rest = _check_push_return_address(slot, SITE + 6)
    jmp = rest[0]
    assert jmp.mnemonic == "jmp"
    assert jmp.address + jmp.size + jmp.disp == SITE + 6 + 0x10
    lo, hi = ops.slot_range
    ops.build_slot(lo)
    ops.build_slot(hi)
    with pytest.raises(PlacementError):
        ops.build_slot(hi + 1)


@pytest.mark.parametrize(
    ("code", "mnemonic"),
    [
        ("e210", "loop"),
        ("e110", "loope"),
        ("e0f0", "loopne"),
        ("67e210", "loop"),
        ("e310", "jrcxz"),
        ("67e3f0", "jecxz"),
    ],
)
def test_count_branches_run_natively_with_absolute_exits(code: str, mnemonic: str) -> None:
    ops = site(code)
    original = disasm(h(code), SITE)[0]
    slot = ops.build_slot(SLOT)
    assert len(slot) == ops.slot_size
    moved = disasm(slot, SLOT)[0]
    assert moved.mnemonic == mnemonic
    assert moved.bytes[: moved.size - 1] == h(code)[: len(h(code)) - 1]  # prefix kept
    n = ops.length
    assert moved.operands[0].imm == SLOT + n + 14
    assert abs_jmp_target(slot, n) == SITE + n
    assert abs_jmp_target(slot, n + 14) == original.operands[0].imm


@pytest.mark.parametrize(
    "code", ["eb10", "e910000000", "7410", "0f8410000000", "90", "f30f1efa", "9c"]
)
def test_emulated_classes_need_no_slot(code: str) -> None:
    # popf has a slot for the one case ptrace cannot emulate (a change of ID).
    ops = site(code)
    assert ops.slot_size == 0
    assert ops.build_slot(SLOT) == b""


@pytest.mark.timeout(60)
def test_a_real_library_analyses_cleanly() -> None:
    """Compiler output at scale: libc's first 30000 instructions all classify, every
    accepted site builds a slot of its declared size, refusals are the expected kinds."""
    from elftools.elf.elffile import ELFFile

    from runtime.x86.decode import disassembler

    with open("/lib/x86_64-linux-gnu/libc.so.6", "rb") as f:
        text = ELFFile(f).get_section_by_name(".text")
        data, base = text.data(), text["sh_addr"]
    seen: set[str] = set()
    for n, (addr, _size, _mn, _ops) in enumerate(disassembler().disasm_lite(data, base)):
        if n == 30000:
            break
        o = addr - base
        ops = analyse(data[o : o + 16], addr)
        seen.add(ops.cls)
        if ops.refused:
            assert ops.text.split()[0] in {"syscall", "hlt", "ud2", "xbegin", "xabort"}, ops.text
            continue
        slot = ops.build_slot(addr + 0x10_0000)
        assert len(slot) == ops.slot_size
    assert {"plain", "rip_relative", "jcc", "jmp_rel", "call_rel", "ret", "nop"} <= seen

"""Linear decoding: instruction boundaries and the per-instruction encoding facts."""

from __future__ import annotations

from runtime.x86.decode import decode_one, disassembler, instruction_boundaries


def test_boundaries_of_a_prologue() -> None:
    # endbr64; push rbp; mov rbp,rsp; sub rsp,0x10; ret
    code = bytes.fromhex("f30f1efa 55 4889e5 4883ec10 c3".replace(" ", ""))
    assert instruction_boundaries(code, 0x401000) == [
        0x401000,
        0x401004,
        0x401005,
        0x401008,
        0x40100C,
    ]


def test_boundaries_stop_at_undecodable_bytes() -> None:
    # nop; ud2; push es (invalid in 64-bit mode); nop
    assert instruction_boundaries(bytes.fromhex("900f0b0690"), 0x1000) == [0x1000, 0x1001]


def test_boundaries_drop_a_truncated_last_instruction() -> None:
    # nop; then the first two bytes of a 5-byte call
    assert instruction_boundaries(bytes.fromhex("90e810"), 0x2000) == [0x2000]


def test_boundaries_of_nothing() -> None:
    assert instruction_boundaries(b"", 0x1000) == []


def test_disassembler_is_shared_and_detailed() -> None:
    assert disassembler() is disassembler()
    assert disassembler().detail


def test_decode_rip_relative_compare_with_immediate() -> None:
    # cmp byte ptr [rip+0x10], 5: the disp32 is followed by an imm8
    insn = decode_one(bytes.fromhex("803d1000000005"), 0x401000)
    assert insn is not None
    assert insn.length == 7
    assert insn.rip_relative
    assert (insn.disp_offset, insn.disp_size, insn.imm_offset, insn.imm_size) == (2, 4, 6, 1)
    assert insn.rip_target == 0x401007 + 0x10


def test_decode_based_operand_and_branch_target() -> None:
    call = decode_one(bytes.fromhex("ff542408"), 0x1000)
    assert call is not None and call.mem is not None
    assert (call.mem.base, call.mem.disp, call.rip_relative) == ("rsp", 8, False)
    jmp = decode_one(bytes.fromhex("ebfe"), 0x1000)
    assert jmp is not None and jmp.branch_target == 0x1000


def test_decode_reads_at_most_one_instruction() -> None:
    insn = decode_one(bytes.fromhex("90" * 32), 0x1000)
    assert insn is not None and insn.length == 1
    assert decode_one(b"", 0) is None
    assert decode_one(bytes.fromhex("06"), 0) is None

"""Linear x86-64 decoding with capstone: the shared disassembler, instruction boundaries,
and the per-instruction facts the site analysis needs (as plain frozen data)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from capstone import CS_ARCH_X86, CS_MODE_64, Cs, CsInsn
from capstone.x86 import X86_OP_IMM, X86_OP_MEM, X86_OP_REG, X86_REG_INVALID, X86_REG_RIP


@functools.cache
def disassembler() -> Cs:
    """One detailed 64-bit capstone instance per process; building one is not free and
    every site analysis needs operand details (disp_offset, operand kinds)."""
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    # Undecodable bytes must stop the walk, never be skipped as data.
    md.skipdata = False
    return md


def instruction_boundaries(code: bytes, start: int) -> list[int]:
    """Addresses where instructions start when `code` (a function's bytes, loaded at
    `start`) is decoded linearly; the walk stops at the first undecodable bytes."""
    return [address for address, _size, _mn, _ops in disassembler().disasm_lite(code, start)]


@dataclass(frozen=True)
class MemOperand:
    """A memory operand as encoded: register names are "" when absent."""

    base: str
    index: str
    scale: int
    disp: int
    segment: str


@dataclass(frozen=True)
class Insn:
    """One decoded instruction with the encoding offsets relocation needs."""

    address: int
    raw: bytes
    id: int
    mnemonic: str
    op_str: str
    prefixes: frozenset[int]
    opcode: int  # the first opcode byte (legacy encodings; VEX/EVEX give their prefix)
    modrm: int
    groups: frozenset[str]
    modrm_offset: int
    disp_offset: int
    disp_size: int
    imm_offset: int
    imm_size: int
    mem: MemOperand | None
    reg_operand: str
    branch_target: int | None

    @property
    def length(self) -> int:
        return len(self.raw)

    @property
    def modrm_reg(self) -> int:
        """The ModRM reg field: the opcode extension of group opcodes such as ff /2."""
        return (self.modrm >> 3) & 7

    @property
    def next_address(self) -> int:
        return self.address + len(self.raw)

    @property
    def text(self) -> str:
        return f"{self.mnemonic} {self.op_str}".strip()

    @property
    def rip_relative(self) -> bool:
        return self.mem is not None and self.mem.base == "rip"

    @property
    def rip_target(self) -> int:
        """The absolute address a RIP-relative operand designates."""
        assert self.mem is not None
        return (self.next_address + self.mem.disp) & 0xFFFF_FFFF_FFFF_FFFF


def _insn_from_capstone(ci: CsInsn) -> Insn:
    mem: MemOperand | None = None
    reg = ""
    target: int | None = None
    for op in ci.operands:
        if op.type == X86_OP_MEM and mem is None:
            m = op.mem
            mem = MemOperand(
                base="rip" if m.base == X86_REG_RIP else _reg(ci, m.base),
                index=_reg(ci, m.index),
                scale=m.scale,
                disp=m.disp,
                segment=_reg(ci, m.segment),
            )
        elif op.type == X86_OP_REG and not reg:
            reg = ci.reg_name(op.reg)
        elif op.type == X86_OP_IMM and target is None:
            target = op.imm
    return Insn(
        address=ci.address,
        raw=bytes(ci.bytes),
        id=ci.id,
        mnemonic=ci.mnemonic,
        op_str=ci.op_str,
        prefixes=frozenset(p for p in ci.prefix if p),
        opcode=ci.opcode[0],
        modrm=ci.modrm,
        groups=frozenset(ci.group_name(g) for g in ci.groups),
        modrm_offset=ci.modrm_offset,
        disp_offset=ci.disp_offset,
        disp_size=ci.disp_size,
        imm_offset=ci.imm_offset,
        imm_size=ci.imm_size,
        mem=mem,
        reg_operand=reg,
        branch_target=target,
    )


def _reg(ci: CsInsn, reg: int) -> str:
    return "" if reg == X86_REG_INVALID else ci.reg_name(reg)


def decode_one(code: bytes, address: int) -> Insn | None:
    """The instruction at the start of `code`, or None when the bytes do not decode
    (including an instruction cut short by the end of `code`)."""
    for ci in disassembler().disasm(code[:15], address, 1):
        return _insn_from_capstone(ci)
    return None

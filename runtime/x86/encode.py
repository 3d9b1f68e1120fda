"""The handful of x86-64 encodings slots are made of, and displacement rewriting."""

from __future__ import annotations

import struct

from runtime.x86.decode import Insn

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# jmp qword ptr [rip+0] followed by the 8-byte target: reaches anywhere, needs no register.
ABS_JMP_SIZE = 14
# lea rsp,[rsp-8]; mov dword [rsp],lo; mov dword [rsp+4],hi: lea and mov leave flags alone.
PUSH_ADDRESS_SIZE = 20


def abs_jmp(target: int) -> bytes:
    """`jmp [rip+0]; .quad target`."""
    return b"\xff\x25\x00\x00\x00\x00" + struct.pack("<Q", target & 0xFFFF_FFFF_FFFF_FFFF)


def push_address(value: int) -> bytes:
    """Push a 64-bit constant without touching flags, registers or memory below the new rsp."""
    lo = value & 0xFFFF_FFFF
    hi = (value >> 32) & 0xFFFF_FFFF
    return (
        b"\x48\x8d\x64\x24\xf8"  # lea rsp, [rsp-8]
        + b"\xc7\x04\x24"
        + struct.pack("<I", lo)  # mov dword [rsp], lo
        + b"\xc7\x44\x24\x04"
        + struct.pack("<I", hi)  # mov dword [rsp+4], hi
    )


def fits_int32(value: int) -> bool:
    return INT32_MIN <= value <= INT32_MAX


def with_rip_disp(insn: Insn, new_end: int) -> bytes:
    """The instruction's bytes with its RIP-relative disp32 re-aimed so that, placed to end
    at `new_end`, it still designates the original absolute address. Raises ValueError when
    the target is out of rel32 reach from there."""
    # Addresses wrap at 2**64 like the CPU's effective-address arithmetic.
    disp = ((insn.rip_target - new_end + (1 << 63)) & 0xFFFF_FFFF_FFFF_FFFF) - (1 << 63)
    if not fits_int32(disp):
        raise ValueError(f"displacement {disp:#x} does not fit in 32 bits")
    o = insn.disp_offset
    return insn.raw[:o] + struct.pack("<i", disp) + insn.raw[o + 4 :]


def with_reg_field(raw: bytes, modrm_offset: int, reg: int) -> bytes:
    """Replace the ModRM reg/opcode-extension field (turns `ff /2` call into `ff /4` jmp)."""
    modrm = (raw[modrm_offset] & 0xC7) | (reg << 3)
    return raw[:modrm_offset] + bytes([modrm]) + raw[modrm_offset + 1 :]


def with_mem_disp(insn: Insn, raw: bytes, new_disp: int) -> bytes:
    """Re-encode the based memory operand of `raw` (same layout as `insn`) with a new
    displacement, as disp8 when it fits, else disp32. Only for instructions with no
    immediate after the displacement (call/jmp r/m)."""
    m = insn.modrm_offset
    mod, rm = raw[m] >> 6, raw[m] & 7
    if insn.imm_size or mod == 0b11 or (mod == 0b00 and rm == 0b101):
        raise ValueError("not a based memory operand without an immediate")
    # Displacement bytes follow ModRM and the SIB byte (present when rm == 100).
    disp_at = m + 1 + (1 if rm == 0b100 else 0)
    old_size = {0b00: 0, 0b01: 1, 0b10: 4}[mod]
    if -128 <= new_disp <= 127:
        new_mod, enc = 0b01, struct.pack("<b", new_disp)
    elif fits_int32(new_disp):
        new_mod, enc = 0b10, struct.pack("<i", new_disp)
    else:
        raise ValueError(f"displacement {new_disp:#x} does not fit in 32 bits")
    modrm = (new_mod << 6) | (raw[m] & 0x3F)
    return raw[:m] + bytes([modrm]) + raw[m + 1 : disp_at] + enc + raw[disp_at + old_size :]

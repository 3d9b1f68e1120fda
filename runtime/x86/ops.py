"""One ops class per instruction class at a probe site, all with the same hooks.

The engine, on a hit at `address` with the thread stopped, does
`if ops.emulate(regs, mem): SETREGS; CONT` else `regs.rip = slot_addr; SETREGS; CONT`.
So a slot must finish the instruction and continue at the right place by itself (boosted:
no second trap, no single-step), and emulation must leave `regs` exactly as the instruction
would have.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

from runtime.errors import PlacementError
from runtime.x86 import encode
from runtime.x86.decode import Insn
from runtime.x86.flags import ID, JCC_CONDITIONS, POPF_WRITABLE, PUSHF_IMAGE_MASK

MASK64 = 0xFFFF_FFFF_FFFF_FFFF


class Memory(Protocol):
    """The target's memory as the engine offers it to emulation."""

    def read(self, addr: int, n: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class SiteOps(ABC):
    """How to leave one probe site; built once per site by `analyse`."""

    cls: ClassVar[str] = ""
    refused: str | None = None

    @property
    @abstractmethod
    def address(self) -> int: ...

    @property
    @abstractmethod
    def length(self) -> int: ...

    @property
    @abstractmethod
    def text(self) -> str: ...

    @property
    def slot_size(self) -> int:
        """Bytes the XOL slot needs; 0 when the class is emulated or skipped."""
        return 0

    @property
    def slot_range(self) -> tuple[int, int] | None:
        """Inclusive range of slot start addresses the slot works from; None: anywhere."""
        return None

    def build_slot(self, slot_addr: int) -> bytes:
        """The out-of-line code, to be written at `slot_addr`."""
        return b""

    def emulate(self, regs: Any, mem: Memory) -> bool:
        """Perform the instruction on `regs`/`mem`; False when the thread must run the slot."""
        return False

    def _fail(self, why: str) -> PlacementError:
        return PlacementError(f"cannot probe {self.address:#x} ({self.text}): {why}", why)


@dataclass(frozen=True)
class _InsnOps(SiteOps):
    insn: Insn

    @property
    def address(self) -> int:
        return self.insn.address

    @property
    def length(self) -> int:
        return self.insn.length

    @property
    def text(self) -> str:
        return self.insn.text


@dataclass(frozen=True)
class RefusedOps(SiteOps):
    """A site we will not probe; `refused` says why in one line."""

    cls: ClassVar[str] = "refused"
    site: int
    size: int
    disasm: str
    reason: str

    @property
    def address(self) -> int:
        return self.site

    @property
    def length(self) -> int:
        return self.size

    @property
    def text(self) -> str:
        return self.disasm

    @property
    def refused(self) -> str:  # type: ignore[override]
        return f"cannot probe {self.site:#x} ({self.disasm}): {self.reason}"

    def error(self) -> PlacementError:
        return PlacementError(self.refused, self.reason)

    def build_slot(self, slot_addr: int) -> bytes:
        raise self.error()

    def emulate(self, regs: Any, mem: Memory) -> bool:
        raise self.error()


@dataclass(frozen=True)
class PlainOps(_InsnOps):
    """Position-independent: run a verbatim copy, then jump back."""

    cls: ClassVar[str] = "plain"

    @property
    def slot_size(self) -> int:
        return self.insn.length + encode.ABS_JMP_SIZE

    def build_slot(self, slot_addr: int) -> bytes:
        return self.insn.raw + encode.abs_jmp(self.insn.next_address)


@dataclass(frozen=True)
class RipRelativeOps(_InsnOps):
    """A RIP-relative operand: the copy's disp32 is re-aimed at the same absolute address."""

    cls: ClassVar[str] = "rip_relative"

    @property
    def slot_size(self) -> int:
        return self.insn.length + encode.ABS_JMP_SIZE

    @property
    def slot_range(self) -> tuple[int, int]:
        end = self.insn.length
        return (
            self.insn.rip_target - encode.INT32_MAX - end,
            self.insn.rip_target - encode.INT32_MIN - end,
        )

    def build_slot(self, slot_addr: int) -> bytes:
        return _relocate_rip(self, slot_addr) + encode.abs_jmp(self.insn.next_address)


@dataclass(frozen=True)
class JmpRelOps(_InsnOps):
    """jmp rel8/rel32: emulated, the tracer sets rip (it does SETREGS anyway)."""

    cls: ClassVar[str] = "jmp_rel"

    def emulate(self, regs: Any, mem: Memory) -> bool:
        regs.rip = self.insn.branch_target
        return True


@dataclass(frozen=True)
class JccOps(_InsnOps):
    """jcc rel8/rel32: emulated from the flags in regs.eflags."""

    cls: ClassVar[str] = "jcc"

    def emulate(self, regs: Any, mem: Memory) -> bool:
        taken = JCC_CONDITIONS[self.insn.id](regs.eflags)
        regs.rip = self.insn.branch_target if taken else self.insn.next_address
        return True


@dataclass(frozen=True)
class CountBranchOps(_InsnOps):
    """loop/loope/loopne/jrcxz/jecxz run natively in the slot (exact rcx/ecx semantics, the
    address-size prefix included), their rel8 re-aimed at an absolute exit to the target."""

    cls: ClassVar[str] = "loop"

    @property
    def slot_size(self) -> int:
        return self.insn.length + 2 * encode.ABS_JMP_SIZE

    def build_slot(self, slot_addr: int) -> bytes:
        i = self.insn
        # rel8 skips the fall-through exit and lands on the taken exit.
        raw = i.raw[: i.imm_offset] + bytes([encode.ABS_JMP_SIZE]) + i.raw[i.imm_offset + 1 :]
        assert i.branch_target is not None
        return raw + encode.abs_jmp(i.next_address) + encode.abs_jmp(i.branch_target)


@dataclass(frozen=True)
class JrcxzOps(CountBranchOps):
    cls: ClassVar[str] = "jrcxz"


@dataclass(frozen=True)
class CallRelOps(_InsnOps):
    """call rel32: push the original return address, jump to the target."""

    cls: ClassVar[str] = "call_rel"

    @property
    def slot_size(self) -> int:
        return encode.PUSH_ADDRESS_SIZE + encode.ABS_JMP_SIZE

    def build_slot(self, slot_addr: int) -> bytes:
        assert self.insn.branch_target is not None
        return encode.push_address(self.insn.next_address) + encode.abs_jmp(self.insn.branch_target)


@dataclass(frozen=True)
class RetOps(_InsnOps):
    """ret / ret imm16: leaves through the stack, so a verbatim copy suffices."""

    cls: ClassVar[str] = "ret"

    @property
    def slot_size(self) -> int:
        return self.insn.length

    def build_slot(self, slot_addr: int) -> bytes:
        return self.insn.raw


@dataclass(frozen=True)
class JmpIndirectOps(_InsnOps):
    """jmp reg / jmp [mem]: a copy; a RIP-relative operand gets its disp re-aimed."""

    cls: ClassVar[str] = "jmp_indirect"

    @property
    def slot_size(self) -> int:
        return self.insn.length

    @property
    def slot_range(self) -> tuple[int, int] | None:
        return RipRelativeOps(self.insn).slot_range if self.insn.rip_relative else None

    def build_slot(self, slot_addr: int) -> bytes:
        return _relocate_rip(self, slot_addr) if self.insn.rip_relative else self.insn.raw


_JMP_RM_EXTENSION = 4  # ff /4 is jmp r/m64, ff /2 the call being replaced


@dataclass(frozen=True)
class CallIndirectOps(_InsnOps):
    """call reg / call [mem]: push the original return address, then `jmp` through the same
    operand. The push moved rsp down by 8, so an rsp-based operand reads 8 further up."""

    cls: ClassVar[str] = "call_indirect"

    def _jmp(self) -> bytes:
        i = self.insn
        raw = encode.with_reg_field(i.raw, i.modrm_offset, _JMP_RM_EXTENSION)
        if i.mem is not None and i.mem.base in ("rsp", "esp"):
            raw = encode.with_mem_disp(i, raw, i.mem.disp + 8)
        return raw

    @property
    def slot_size(self) -> int:
        return encode.PUSH_ADDRESS_SIZE + len(self._jmp())

    @property
    def slot_range(self) -> tuple[int, int] | None:
        if not self.insn.rip_relative:
            return None
        lo, hi = RipRelativeOps(self.insn).slot_range
        return lo - encode.PUSH_ADDRESS_SIZE, hi - encode.PUSH_ADDRESS_SIZE

    def build_slot(self, slot_addr: int) -> bytes:
        jmp = self._jmp()
        if self.insn.rip_relative:
            jmp_end = slot_addr + encode.PUSH_ADDRESS_SIZE + len(jmp)
            try:
                jmp = encode.with_rip_disp(_with_raw(self.insn, jmp), jmp_end)
            except ValueError:
                raise self._fail(_out_of_reach(self.insn, slot_addr)) from None
        return encode.push_address(self.insn.next_address) + jmp


@dataclass(frozen=True)
class NopOps(_InsnOps):
    """Every nop form and endbr64/endbr32: nothing to do but step over."""

    cls: ClassVar[str] = "nop"

    def emulate(self, regs: Any, mem: Memory) -> bool:
        regs.rip = self.insn.next_address
        return True


@dataclass(frozen=True)
class PushfOps(_InsnOps):
    """pushf is emulated so the pushed image is the program's flags, never the tracer's."""

    cls: ClassVar[str] = "pushf"

    def emulate(self, regs: Any, mem: Memory) -> bool:
        image = regs.eflags & PUSHF_IMAGE_MASK
        if 0x66 in self.insn.prefixes:
            rsp = (regs.rsp - 2) & MASK64
            mem.write(rsp, struct.pack("<H", image & 0xFFFF))
        else:
            rsp = (regs.rsp - 8) & MASK64
            mem.write(rsp, struct.pack("<Q", image))
        regs.rsp = rsp
        regs.rip = self.insn.next_address
        return True


@dataclass(frozen=True)
class PopfOps(_InsnOps):
    """popf is emulated: only the flags user mode may change are taken from the stack.
    Except a change of ID (bit 21): PTRACE_SETREGS cannot set or clear it, so that popf
    runs natively from its slot (a copy and a jump back)."""

    cls: ClassVar[str] = "popf"

    @property
    def slot_size(self) -> int:
        return self.insn.length + encode.ABS_JMP_SIZE

    def build_slot(self, slot_addr: int) -> bytes:
        return self.insn.raw + encode.abs_jmp(self.insn.next_address)

    def emulate(self, regs: Any, mem: Memory) -> bool:
        if 0x66 in self.insn.prefixes:
            value = struct.unpack("<H", mem.read(regs.rsp, 2))[0]
            writable = POPF_WRITABLE & 0xFFFF
            regs.rsp = (regs.rsp + 2) & MASK64
        else:
            value = struct.unpack("<Q", mem.read(regs.rsp, 8))[0]
            writable = POPF_WRITABLE
            if (value ^ regs.eflags) & ID:
                return False
            regs.rsp = (regs.rsp + 8) & MASK64
        regs.eflags = (regs.eflags & ~writable) | (value & writable)
        regs.rip = self.insn.next_address
        return True


def _with_raw(insn: Insn, raw: bytes) -> Insn:
    """`insn` re-encoded as `raw` of the same layout (same length, same offsets)."""
    return replace(insn, raw=raw)


def _out_of_reach(insn: Insn, slot_addr: int) -> str:
    return (
        f"its RIP-relative operand {insn.rip_target:#x} is out of rel32 reach of the "
        f"out-of-line slot at {slot_addr:#x}; the slot must be placed within 2 GiB"
    )


def _relocate_rip(ops: _InsnOps, slot_addr: int) -> bytes:
    try:
        return encode.with_rip_disp(ops.insn, slot_addr + ops.insn.length)
    except ValueError:
        raise ops._fail(_out_of_reach(ops.insn, slot_addr)) from None

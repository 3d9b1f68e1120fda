"""Classify a probe site once into the ops object that knows how to leave it.

Kernel style (arch/x86/kernel/uprobes.c): a table says which instructions are refused and
which need special treatment; everything else is plain, or RIP-relative when an operand is
based on rip. The hot path never looks at mnemonics again.
"""

from __future__ import annotations

from collections.abc import Callable

from capstone import x86 as cs

from runtime.x86 import encode, ops
from runtime.x86.decode import Insn, decode_one
from runtime.x86.flags import JCC_CONDITIONS

_SYSCALL = "system call instructions cannot run out of line"
_SOFT_INT = "software interrupts cannot run out of line"
_PORT_IO = "port I/O instructions cannot run out of line"
_FAR = "far transfers change the code segment and cannot run out of line"
_UD = "the instruction raises #UD on purpose; out of line the fault would report the slot address"
_SS = "loading SS holds off interrupts and traps for one instruction; it cannot run out of line"
_RTM = "transactional memory instructions cannot run out of line (the trap aborts the transaction)"

REFUSED: dict[int, str] = {
    cs.X86_INS_INT3: "the site already holds an int3: another debugger or a probe placed by someone else",
    cs.X86_INS_INT1: _SOFT_INT,
    cs.X86_INS_INT: _SOFT_INT,
    cs.X86_INS_INTO: _SOFT_INT,
    cs.X86_INS_SYSCALL: _SYSCALL,
    cs.X86_INS_SYSENTER: _SYSCALL,
    cs.X86_INS_SYSEXIT: _SYSCALL,
    cs.X86_INS_SYSEXITQ: _SYSCALL,
    cs.X86_INS_SYSRET: _SYSCALL,
    cs.X86_INS_SYSRETQ: _SYSCALL,
    cs.X86_INS_HLT: "hlt is privileged and only faults in user space",
    cs.X86_INS_IN: _PORT_IO,
    cs.X86_INS_OUT: _PORT_IO,
    cs.X86_INS_INSB: _PORT_IO,
    cs.X86_INS_INSW: _PORT_IO,
    cs.X86_INS_INSD: _PORT_IO,
    cs.X86_INS_OUTSB: _PORT_IO,
    cs.X86_INS_OUTSW: _PORT_IO,
    cs.X86_INS_OUTSD: _PORT_IO,
    cs.X86_INS_IRET: "interrupt returns cannot run out of line",
    cs.X86_INS_IRETD: "interrupt returns cannot run out of line",
    cs.X86_INS_IRETQ: "interrupt returns cannot run out of line",
    cs.X86_INS_LJMP: _FAR,
    cs.X86_INS_LCALL: _FAR,
    cs.X86_INS_RETF: _FAR,
    cs.X86_INS_RETFQ: _FAR,
    cs.X86_INS_UD0: _UD,
    cs.X86_INS_UD1: _UD,
    cs.X86_INS_UD2: _UD,
    cs.X86_INS_LSS: _SS,
    cs.X86_INS_XBEGIN: _RTM,
    cs.X86_INS_XABORT: _RTM,
}

OpsFactory = Callable[[Insn], ops.SiteOps]

SPECIAL: dict[int, OpsFactory] = {
    cs.X86_INS_JMP: lambda i: (
        ops.JmpRelOps(i) if i.branch_target is not None else ops.JmpIndirectOps(i)
    ),
    cs.X86_INS_CALL: lambda i: (
        ops.CallRelOps(i) if i.branch_target is not None else ops.CallIndirectOps(i)
    ),
    cs.X86_INS_RET: ops.RetOps,
    cs.X86_INS_LOOP: ops.CountBranchOps,
    cs.X86_INS_LOOPE: ops.CountBranchOps,
    cs.X86_INS_LOOPNE: ops.CountBranchOps,
    cs.X86_INS_JRCXZ: ops.JrcxzOps,
    cs.X86_INS_JECXZ: ops.JrcxzOps,
    cs.X86_INS_NOP: ops.NopOps,
    cs.X86_INS_ENDBR64: ops.NopOps,
    cs.X86_INS_ENDBR32: ops.NopOps,
    cs.X86_INS_PUSHF: ops.PushfOps,
    cs.X86_INS_PUSHFQ: ops.PushfOps,
    cs.X86_INS_POPF: ops.PopfOps,
    cs.X86_INS_POPFQ: ops.PopfOps,
    **{jcc: ops.JccOps for jcc in JCC_CONDITIONS},
}

_BRANCHES = {
    cs.X86_INS_JMP,
    cs.X86_INS_CALL,
    cs.X86_INS_JRCXZ,
    cs.X86_INS_JECXZ,
    cs.X86_INS_LOOP,
    cs.X86_INS_LOOPE,
    cs.X86_INS_LOOPNE,
    *JCC_CONDITIONS,
}


def _refusal(insn: Insn) -> str | None:
    """Why `insn` cannot be probed, or None."""
    reason = REFUSED.get(insn.id)
    if reason:
        return reason
    if insn.opcode == 0xFF and insn.modrm_reg in (3, 5):
        # capstone names ff /3 and ff /5 plain call/jmp; they are the far (m16:64) forms.
        return _FAR
    if insn.id in (cs.X86_INS_MOV, cs.X86_INS_POP) and insn.reg_operand == "ss":
        return _SS
    if "privilege" in insn.groups:
        return "privileged instructions only fault in user space"
    if insn.id in _BRANCHES and 0x66 in insn.prefixes and insn.branch_target is not None:
        # Intel ignores the prefix in 64-bit mode, AMD truncates rip to 16 bits.
        return "operand-size prefixed relative branches behave differently on Intel and AMD"
    if insn.id == cs.X86_INS_CALL and insn.mem is None and insn.reg_operand in ("rsp", "esp"):
        return "a call through rsp jumps into the stack"
    if insn.id == cs.X86_INS_CALL and 0x66 in insn.prefixes:
        return "operand-size prefixed calls push a 16-bit return address"
    return None


def _relocation_checks_out(insn: Insn) -> bool:
    """Re-aim the disp32 for a trial address and decode the result: the same instruction
    designating the same absolute address, or capstone's disp_offset cannot be trusted
    for this encoding and the site is refused rather than run with a wrong operand."""
    # A shift that changes several disp bytes and cannot overflow whatever the disp.
    assert insn.mem is not None
    trial_end = (insn.next_address + (0x0101_0101 if insn.mem.disp >= 0 else -0x0101_0101)) & (
        0xFFFF_FFFF_FFFF_FFFF
    )
    try:
        raw = encode.with_rip_disp(insn, trial_end)
    except ValueError:
        return False
    moved = decode_one(raw, (trial_end - insn.length) & 0xFFFF_FFFF_FFFF_FFFF)
    return (
        moved is not None
        and moved.raw == raw
        and moved.id == insn.id
        and moved.rip_relative
        and moved.rip_target == insn.rip_target
    )


def analyse(code: bytes, address: int) -> ops.SiteOps:
    """The ops for the instruction at the start of `code`, loaded at `address`."""
    insn = decode_one(code, address)
    if insn is None:
        shown = code[:4].hex(" ") or "nothing"
        return ops.RefusedOps(
            address, 0, f"bytes {shown}", "the bytes do not decode as an x86-64 instruction"
        )
    reason = _refusal(insn)
    if not reason and insn.rip_relative and not _relocation_checks_out(insn):
        reason = "its RIP-relative operand cannot be relocated"
    if reason:
        return ops.RefusedOps(address, insn.length, insn.text, reason)
    special = SPECIAL.get(insn.id)
    if special is not None:
        return special(insn)
    if insn.rip_relative:
        return ops.RipRelativeOps(insn)
    return ops.PlainOps(insn)

"""The registers reg() reads: every spelling onto a field of the saved user_regs_struct.

bpftrace's reg() on x86-64 takes the kernel's pt_regs names without the `r`/`e` prefix (ip,
sp, bp, ax, ..., flags, orig_ax); the full names (rip, rsp, eflags, ...) and the segment
and base registers are accepted too. The value is the field of the ptrace register set
(struct user_regs_struct in <sys/user.h>), read while the thread is stopped.
"""

from __future__ import annotations

from types import MappingProxyType

# The fields of user_regs_struct, in its order.
USER_REGS_FIELDS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
    "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
    "gs_base", "ds", "es", "fs", "gs",
)

# bpftrace's short names -> the field they read.
_SHORT = {
    "ip": "rip", "sp": "rsp", "bp": "rbp", "ax": "rax", "bx": "rbx", "cx": "rcx",
    "dx": "rdx", "si": "rsi", "di": "rdi", "flags": "eflags", "orig_ax": "orig_rax",
}

REGISTERS: MappingProxyType[str, str] = MappingProxyType(
    {**{f: f for f in USER_REGS_FIELDS}, **_SHORT})


def register_field(name: str) -> str | None:
    """The user_regs_struct field reg(name) reads, or None for an unknown name."""
    return REGISTERS.get(name)

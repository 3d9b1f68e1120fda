"""Entry and return trampolines of the jump path, as machine code.

An entry trampoline (one per site) is reached by the site's `jmp rel32`. It moves rsp below
the red zone, fills a `struct frame` (ptrace's user_regs_struct layout, so the register
table's offsets serve both paths) with the registers as they were at the site, calls the
in-target program (SysV ABI, 16-byte aligned), restores what the call may clobber (the
caller-saved registers and the flags), runs the displaced instructions relocated, and jumps
back behind them.

Flags: saving them with pushfq/popfq costs most of a hit (see DESIGN.md), so they are kept
with `seto al; lahf` / `add al,0x7f; sahf`, and not at all where the site's analysis proved
them dead. DF is never touched (the ABI has it clear, and the program does not set it).

The return trampoline (one per code area) is planted as the return address of a probed
call by `jp_ret_enter`; `jp_ret_exit` gives back the original return address, which the
trampoline jumps to with every register as the function returned it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from runtime.jump.eligible import JumpSite
from runtime.x86 import encode
from runtime.x86.decode import Insn

RED_ZONE = 128
FRAME_SIZE = 216
# The frame, then one word for the lahf/seto flags image, then one spare (keeps 16 bytes).
FLAGS_SLOT = FRAME_SIZE
ALLOC = RED_ZONE + FRAME_SIZE + 16

REG_NUM = {"rax": 0, "rcx": 1, "rdx": 2, "rbx": 3, "rsp": 4, "rbp": 5, "rsi": 6, "rdi": 7,
           **{f"r{n}": n for n in range(8, 16)}}
OFF = {name: 8 * i for i, name in enumerate(
    ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
     "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
     "es", "fs", "gs"))}
# Caller-saved registers the program may clobber (rax is handled around the flags).
_CLOBBERED = ("rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")
_PRESERVED = ("rbx", "rbp", "r12", "r13", "r14", "r15")
_ZEROED = ("orig_rax", "cs", "ss", "gs_base", "ds", "es", "fs", "gs")
# eflags bit 1 always reads 1, IF is always set in user mode.
DEAD_FLAGS_IMAGE = 0x202


@dataclass
class Asm:
    """A byte buffer that knows the address it will be loaded at (for rel32 fields)."""

    base: int
    buf: bytearray = field(default_factory=bytearray)

    @property
    def here(self) -> int:
        return self.base + len(self.buf)

    def emit(self, data: bytes) -> None:
        self.buf += data

    def _rsp_mem(self, opcode: bytes, reg: int, disp: int, rex_w: bool = True) -> None:
        rex = (0x48 if rex_w else 0x40) | (0x04 if reg >= 8 else 0)
        if -128 <= disp <= 127:
            body = bytes([0x44 | (reg & 7) << 3, 0x24]) + struct.pack("<b", disp)
        else:
            body = bytes([0x84 | (reg & 7) << 3, 0x24]) + struct.pack("<i", disp)
        self.emit(bytes([rex]) + opcode + body)

    def store(self, reg: str, disp: int) -> None:
        """mov [rsp+disp], reg"""
        self._rsp_mem(b"\x89", REG_NUM[reg], disp)

    def load(self, reg: str, disp: int) -> None:
        """mov reg, [rsp+disp]"""
        self._rsp_mem(b"\x8b", REG_NUM[reg], disp)

    def store_imm(self, disp: int, imm: int) -> None:
        """mov qword [rsp+disp], simm32"""
        self._rsp_mem(b"\xc7", 0, disp)
        self.emit(struct.pack("<i", imm))

    def lea_rsp(self, delta: int) -> None:
        """lea rsp, [rsp+delta]: moves rsp without touching the flags."""
        self.emit(b"\x48\x8d\xa4\x24" + struct.pack("<i", delta))

    def lea_rax_rsp(self, delta: int) -> None:
        self.emit(b"\x48\x8d\x84\x24" + struct.pack("<i", delta))

    def movabs(self, reg: str, value: int) -> None:
        n = REG_NUM[reg]
        self.emit(bytes([0x48 | (1 if n >= 8 else 0), 0xB8 + (n & 7)])
                  + struct.pack("<Q", value & 0xFFFF_FFFF_FFFF_FFFF))

    def mov_edx(self, value: int) -> None:
        self.emit(b"\xba" + struct.pack("<I", value))

    def rel32(self, opcode: bytes, target: int) -> None:
        end = self.here + len(opcode) + 4
        disp = target - end
        if not encode.fits_int32(disp):
            raise ValueError(f"{target:#x} is out of rel32 reach of {self.here:#x}")
        self.emit(opcode + struct.pack("<i", disp))

    def call(self, target: int) -> None:
        self.rel32(b"\xe8", target)

    def jmp(self, target: int) -> None:
        """jmp rel32 when it reaches, else the absolute form."""
        disp = target - (self.here + 5)
        if encode.fits_int32(disp):
            self.rel32(b"\xe9", target)
        else:
            self.emit(encode.abs_jmp(target))


def _save_flags(a: Asm) -> None:
    # rax is already saved: seto/lahf only write al/ah.
    a.emit(b"\x0f\x90\xc0")  # seto al
    a.emit(b"\x9f")  # lahf
    a.store("rax", FLAGS_SLOT)


def _flags_image_into_frame(a: Asm) -> None:
    """eflags = ah | OF << 11 | IF, from the lahf/seto image (rax, rcx already saved)."""
    a.emit(b"\x0f\xb6\xcc")  # movzx ecx, ah
    a.emit(b"\x0f\xb6\xc0")  # movzx eax, al
    a.emit(b"\xc1\xe0\x0b")  # shl eax, 11
    a.emit(b"\x09\xc8")  # or eax, ecx
    a.emit(b"\x0d\x00\x02\x00\x00")  # or eax, 0x200
    a.store("rax", OFF["eflags"])


def _restore_flags(a: Asm) -> None:
    a.load("rax", FLAGS_SLOT)
    a.emit(b"\x04\x7f")  # add al, 0x7f: OF set exactly when al was 1
    a.emit(b"\x9e")  # sahf


def _fill_frame(a: Asm, rip: int, keep_flags: bool) -> None:
    """Allocate below the red zone and store every register; rsp = the frame."""
    a.lea_rsp(-ALLOC)
    a.store("rax", OFF["rax"])
    if keep_flags:
        _save_flags(a)
    for reg in (*_CLOBBERED, *_PRESERVED):
        a.store(reg, OFF[reg])
    a.lea_rax_rsp(ALLOC)
    a.store("rax", OFF["rsp"])
    if keep_flags:
        a.load("rax", FLAGS_SLOT)
        _flags_image_into_frame(a)
    else:
        a.store_imm(OFF["eflags"], DEAD_FLAGS_IMAGE)
    if rip:
        a.movabs("rax", rip)
        a.store("rax", OFF["rip"])
    else:
        a.store_imm(OFF["rip"], 0)
    a.emit(b"\x64\x48\x8b\x04\x25\x00\x00\x00\x00")  # mov rax, fs:[0]  (the TCB self-pointer)
    a.store("rax", OFF["fs_base"])
    for name in _ZEROED:
        a.store_imm(OFF[name], 0)
    a.emit(b"\x48\x89\xe3")  # mov rbx, rsp (callee-saved: survives the calls)
    a.emit(b"\x48\x83\xe4\xf0")  # and rsp, -16


def _call(a: Asm, target: int, shm: int, site_id: int | None, rcx: int | None = None) -> None:
    a.emit(b"\x48\x89\xdf")  # mov rdi, rbx
    a.movabs("rsi", shm)
    if site_id is not None:
        a.mov_edx(site_id)
    if rcx is not None:
        a.movabs("rcx", rcx)
    a.call(target)


def _restore(a: Asm, keep_flags: bool) -> None:
    """Back to the registers of the site (rsp included): the frame is at rbx."""
    a.emit(b"\x48\x89\xdc")  # mov rsp, rbx
    if keep_flags:
        _restore_flags(a)
    for reg in (*_CLOBBERED, "rbx", "rax"):
        a.load(reg, OFF[reg])
    a.lea_rsp(ALLOC)


@dataclass(frozen=True)
class ProgramEntries:
    """Where the in-target program's functions are, at the target's addresses."""

    hit: int
    ret_enter: int
    ret_exit: int
    shm: int


def relocate(insn: Insn, a: Asm) -> None:
    """Emit `insn` so that, run at a.here, it does what it did at its own address."""
    from runtime.x86.analyse import analyse

    ops = analyse(insn.raw + b"\x90" * 16, insn.address)
    cls = ops.cls
    if cls in ("plain", "nop", "pushf", "popf", "ret") or (
            cls == "jmp_indirect" and not insn.rip_relative):
        a.emit(insn.raw)
    elif cls in ("rip_relative", "jmp_indirect"):
        a.emit(encode.with_rip_disp(insn, a.here + insn.length))
    elif cls == "jmp_rel":
        assert insn.branch_target is not None
        a.jmp(insn.branch_target)
    elif cls == "jcc":
        assert insn.branch_target is not None
        cc = (insn.raw[1] if insn.raw[0] == 0x0F else insn.raw[0]) & 0x0F
        # jcc taken -> the absolute exit; not taken -> jump over it.
        a.emit(bytes([0x70 | cc, 2, 0xEB, encode.ABS_JMP_SIZE]))
        a.emit(encode.abs_jmp(insn.branch_target))
    elif cls in ("call_rel", "call_indirect", "loop", "jrcxz"):
        # Last in the sequence (eligibility made sure): the slot code ends in its exits.
        a.emit(ops.build_slot(a.here))
    else:
        raise ValueError(f"class {cls} cannot be relocated into a trampoline")


def _ends_in_exit(insn: Insn) -> bool:
    from runtime.x86.analyse import analyse

    return analyse(insn.raw + b"\x90" * 16, insn.address).cls in (
        "call_rel", "call_indirect", "loop", "jrcxz", "ret", "jmp_rel", "jmp_indirect")


def entry_trampoline(base: int, site: JumpSite, site_id: int, prog: ProgramEntries,
                     entry: bool, returns: bool, ret_tramp: int) -> bytes:
    """The per-site trampoline, to be written at `base`. `entry`: call jp_hit; `returns`:
    call jp_ret_enter (planting `ret_tramp` as the return address)."""
    a = Asm(base)
    keep = site.flags_live
    _fill_frame(a, site.address, keep)
    if entry:
        _call(a, prog.hit, prog.shm, site_id)
    if returns:
        _call(a, prog.ret_enter, prog.shm, site_id, ret_tramp)
    _restore(a, keep)
    for insn in site.insns:
        relocate(insn, a)
    if not _ends_in_exit(site.insns[-1]):
        a.jmp(site.resume)
    return bytes(a.buf)


def return_trampoline(base: int, prog: ProgramEntries) -> bytes:
    """The shared return trampoline: rsp is just above the popped return slot, rax/rdx
    hold the return value. The original return address is written back into the popped
    slot ([rsp-8] once the frame is gone: a signal frame never lands in the red zone)."""
    a = Asm(base)
    _fill_frame(a, 0, True)
    _call(a, prog.ret_exit, prog.shm, None)
    a.emit(b"\x48\x85\xc0")  # test rax, rax
    a.emit(b"\x74\x00")  # jz .lost (patched below)
    jz_at = len(a.buf)
    a.emit(b"\x48\x89\x83" + struct.pack("<i", ALLOC - 8))  # mov [rbx+ALLOC-8], rax
    _restore(a, True)
    a.emit(b"\xff\x64\x24\xf8")  # jmp [rsp-8]
    lost = len(a.buf)
    a.buf[jz_at - 1] = lost - jz_at
    # No original address (should not happen): registers back, then trap for the tracer.
    _restore(a, True)
    a.emit(b"\xcc")
    return bytes(a.buf)

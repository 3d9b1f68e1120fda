"""LLVM IR -> position-independent x86-64 machine code with no relocations.

The object file LLVM emits is read back with pyelftools: its .text must be the only
section with bytes, without relocations, and with the three entry symbols. The machine is
a plain x86-64 with the vector and x87 units switched off, so the code touches only
general-purpose registers and the trampolines need not save any other state.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import llvmlite.binding as llvm
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from runtime.errors import UprobeError

ENTRIES = ("jp_hit", "jp_ret_enter", "jp_ret_exit")
FEATURES = "-sse,-sse2,-sse3,-ssse3,-sse4.1,-sse4.2,-avx,-avx2,-avx512f,-mmx,-x87,+soft-float"
OPT_LEVEL = 2


class JumpCompileError(UprobeError):
    """The generated program did not compile to self-contained code (a bug, not input)."""


@dataclass(frozen=True)
class MachineCode:
    code: bytes
    entries: dict[str, int]  # entry symbol -> offset in code
    max_stack: int  # bytes below the caller's rsp the deepest entry may use


def _machine() -> llvm.TargetMachine:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()  # the inline `syscall` and `pause`
    target = llvm.Target.from_triple("x86_64-unknown-linux-gnu")
    return target.create_target_machine(cpu="x86-64", features=FEATURES, opt=OPT_LEVEL,
                                        reloc="pic", codemodel="small")


def compile_ir(ir_text: str) -> MachineCode:
    tm = _machine()
    mod = llvm.parse_assembly(ir_text)
    mod.triple = "x86_64-unknown-linux-gnu"
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=OPT_LEVEL)
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)
    obj = tm.emit_object(mod)
    return extract_text(obj)


def extract_text(obj: bytes) -> MachineCode:
    """The .text bytes and entry offsets of an ELF object; refuses anything that would
    need linking (relocations, data sections with contents)."""
    elf = ELFFile(io.BytesIO(obj))
    text = elf.get_section_by_name(".text")
    if text is None:
        raise JumpCompileError("the compiled program has no .text")
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection) and sec.data_size:
            raise JumpCompileError(f"the compiled program needs relocations ({sec.name})")
        flags = sec["sh_flags"]
        alloc = flags & 0x2
        if alloc and sec.name != ".text" and sec["sh_type"] != "SHT_NOBITS" and sec.data_size:
            raise JumpCompileError(f"the compiled program has data in {sec.name}")
        if alloc and sec["sh_type"] == "SHT_NOBITS" and sec.data_size:
            raise JumpCompileError(f"the compiled program has data in {sec.name}")
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise JumpCompileError("the compiled program has no symbol table")
    entries: dict[str, int] = {}
    text_index = [s.name for s in elf.iter_sections()].index(".text")
    for sym in symtab.iter_symbols():
        if sym.name in ENTRIES and sym["st_shndx"] == text_index:
            entries[sym.name] = sym["st_value"]
        elif sym["st_shndx"] == "SHN_UNDEF" and sym.name:
            raise JumpCompileError(f"the compiled program calls out to {sym.name}")
    missing = [e for e in ENTRIES if e not in entries]
    if missing:
        raise JumpCompileError(f"the compiled program lacks {', '.join(missing)}")
    code = text.data()
    return MachineCode(code, entries, stack_use(code, entries))


def stack_use(code: bytes, entries: dict[str, int]) -> int:
    """An upper bound of any entry's stack use: the return address, every push in its
    code and every `sub rsp, N`. Every helper is inlined and the entries call nothing
    (syscalls use no user stack), so one frame is the whole story."""
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    md = Cs(CS_ARCH_X86, CS_MODE_64)
    starts = sorted(entries.values()) + [len(code)]
    worst = 0
    for off in entries.values():
        end = starts[starts.index(off) + 1]
        depth = 8
        for ins in md.disasm(code[off:end], off):
            if ins.mnemonic == "push":
                depth += 8
            elif ins.mnemonic == "sub" and ins.op_str.startswith("rsp, "):
                depth += int(ins.op_str.split(", ")[1], 0)
            elif ins.mnemonic == "call":
                raise JumpCompileError("the compiled program makes a call")
        worst = max(worst, depth)
    return worst

"""USDT (SystemTap SDT) probes: `.note.stapsdt` notes and their argument specs.

Each note (owner "stapsdt", type NT_STAPSDT=3) holds three addresses (pc, the link-time
address of `.stapsdt.base`, the semaphore or 0) and then provider\\0name\\0args\\0. If the
file was prelinked its sections moved but the note did not, so pc and semaphore are shifted
by (actual .stapsdt.base address - the note's base), as systemtap, bcc and bpftrace do.

Argument specs are GNU assembler operands prefixed by a size: `-4@%eax` (signed 32-bit in
eax), `8@-8(%rbp)`, `8@(%rax,%rdx,8)`, `4@$5`, `8@symbol(%rip)`.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from runtime.elfsyms import ElfFile, FileIdentity
from runtime.errors import MemoryReadError, ResolveError, TargetError

NT_STAPSDT = 3
_NOTE_ADDRS = struct.Struct("<QQQ")

def _register_table() -> dict[str, tuple[str, int, int]]:
    table: dict[str, tuple[str, int, int]] = {"rip": ("rip", 0, 8)}
    for x in "abcd":
        full = f"r{x}x"
        table.update({full: (full, 0, 8), f"e{x}x": (full, 0, 4), f"{x}x": (full, 0, 2),
                      f"{x}l": (full, 0, 1), f"{x}h": (full, 8, 1)})
    for two in ("si", "di", "bp", "sp"):
        full = f"r{two}"
        table.update({full: (full, 0, 8), f"e{two}": (full, 0, 4), two: (full, 0, 2),
                      f"{two}l": (full, 0, 1)})
    for n in range(8, 16):
        full = f"r{n}"
        table.update({full: (full, 0, 8), f"{full}d": (full, 0, 4), f"{full}w": (full, 0, 2),
                      f"{full}b": (full, 0, 1), f"{full}l": (full, 0, 1)})
    return table


# name -> (full register in user_regs_struct, bit shift, width in bytes); read-only.
_REGS: Mapping[str, tuple[str, int, int]] = MappingProxyType(_register_table())

_NUM = r"[-+]?(?:0[xX][0-9a-fA-F]+|\d+)"
_MEM = re.compile(
    rf"^(?P<disp>{_NUM})?(?:(?P<sym>[A-Za-z_.$][\w.$@]*)(?P<symoff>[-+]\d+)?)?"
    r"\((?:%(?P<base>[a-z0-9]+))?(?:,%(?P<index>[a-z0-9]+)(?:,(?P<scale>[1248]))?)?\)$"
)


@dataclass(frozen=True)
class UsdtArg:
    """One parsed argument: `kind` 'reg' (value of `reg`), 'imm' (`value`) or 'mem'
    (`size` bytes at offset + base + index*scale, or at symbol+offset for %rip)."""

    size: int
    signed: bool
    kind: str
    reg: str | None = None
    offset: int = 0
    base: str | None = None
    index: str | None = None
    scale: int = 1
    symbol: str | None = None
    value: int = 0
    spec: str = ""

    @classmethod
    def parse(cls, spec: str) -> UsdtArg:
        """Parse `SIZE@OPERAND`; a ResolveError names the spec it cannot read."""
        size_text, at, operand = spec.partition("@")
        if not at:
            size_text, operand = "8", spec  # very old notes carried no size
        try:
            size_signed = int(size_text)
        except ValueError:
            raise ResolveError(f"bad USDT argument size in '{spec}'") from None
        size = abs(size_signed)
        if size not in (1, 2, 4, 8):
            raise ResolveError(f"bad USDT argument size in '{spec}'")
        signed = size_signed < 0
        if operand.startswith("$"):
            try:
                return cls(size, signed, "imm", value=int(operand[1:], 0), spec=spec)
            except ValueError:
                raise ResolveError(f"unsupported USDT argument '{spec}'") from None
        if operand.startswith("%"):
            reg = operand[1:]
            if reg not in _REGS:
                raise ResolveError(f"unknown register in USDT argument '{spec}'")
            return cls(size, signed, "reg", reg=reg, spec=spec)
        m = _MEM.match(operand)
        if m is None:
            raise ResolveError(f"unsupported USDT argument '{spec}'")
        base, index = m.group("base"), m.group("index")
        for r in (base, index):
            if r is not None and r not in _REGS:
                raise ResolveError(f"unknown register in USDT argument '{spec}'")
        offset = int(m.group("disp"), 0) if m.group("disp") else 0
        symbol = m.group("sym")
        if symbol is not None:
            if base != "rip" or index is not None:
                raise ResolveError(f"unsupported USDT argument '{spec}' (symbol without %rip)")
            offset += int(m.group("symoff") or 0)
        return cls(size, signed, "mem", base=base, index=index,
                   scale=int(m.group("scale") or 1), offset=offset, symbol=symbol, spec=spec)

    def evaluate(
        self,
        regs: Any,
        read_mem: Callable[[int, int], bytes],
        elf: ElfFile | None = None,
        bias: int = 0,
    ) -> int:
        """The argument's value at the probe: `regs` is a user_regs_struct, `read_mem(addr, n)`
        reads target memory, `elf`/`bias` (runtime minus link-time address) resolve
        `symbol(%rip)` operands. Signed args come back negative where they are."""
        if self.kind == "imm":
            return self._fit(self.value)
        if self.kind == "reg":
            return self._fit(register_value(regs, self.reg or ""))
        if self.symbol is not None:
            if elf is None:
                raise ResolveError(f"USDT argument '{self.spec}' needs the ELF symbol table")
            vaddr = elf.symbol_vaddr(self.symbol)
            if vaddr is None:
                raise ResolveError(f"USDT argument '{self.spec}': no symbol '{self.symbol}' "
                                   f"in {elf.path}")
            address = vaddr + bias + self.offset
        else:
            address = self.offset
            if self.base is not None:
                address += register_value(regs, self.base)
            if self.index is not None:
                address += register_value(regs, self.index) * self.scale
        address &= (1 << 64) - 1
        data = read_mem(address, self.size)
        if len(data) != self.size:
            raise MemoryReadError(f"short read of USDT argument at {address:#x}", address)
        return self._fit(int.from_bytes(data, "little"))

    def _fit(self, value: int) -> int:
        """Truncate to the argument's size and apply its signedness."""
        bits = self.size * 8
        value &= (1 << bits) - 1
        if self.signed and value >> (bits - 1):
            value -= 1 << bits
        return value


def register_value(regs: Any, name: str) -> int:
    """The unsigned value of register `name` (eax, ah, r8d, ...) taken from `regs`."""
    full, shift, width = _REGS[name]
    return (getattr(regs, full) >> shift) & ((1 << (8 * width)) - 1)


@dataclass(frozen=True)
class UsdtProbe:
    """One USDT site: `pc` and `semaphore` are link-time vaddrs after prelink adjustment
    (semaphore 0 = none); `offset`/`semaphore_offset` are file offsets. `args_error` is set
    (and `args` empty) when a spec could not be parsed: listing still shows the probe."""

    path: str
    provider: str
    name: str
    pc: int
    offset: int
    base: int
    semaphore: int
    semaphore_offset: int | None
    arg_spec: str
    args: tuple[UsdtArg, ...]
    args_error: str | None = None

    def bias_at(self, runtime_pc: int) -> int:
        """The file's load bias given the runtime address where this probe's pc is."""
        return runtime_pc - self.pc

    def arg(self, n: int) -> UsdtArg:
        """Argument `n` (0-based); a ResolveError when the probe has no such argument."""
        if self.args_error:
            raise ResolveError(self.args_error)
        if not 0 <= n < len(self.args):
            raise ResolveError(f"usdt:{self.path}:{self.provider}:{self.name} has "
                               f"{len(self.args)} arguments, no arg{n}")
        return self.args[n]


def read_probes(path: str) -> list[UsdtProbe]:
    """The USDT probes of the ELF at `path` in note order (cached per file identity)."""
    elf = ElfFile.open(path)
    return list(_read_probes(elf.path, elf.identity))


@functools.lru_cache(maxsize=64)
def _read_probes(path: str, identity: FileIdentity) -> tuple[UsdtProbe, ...]:
    elf = ElfFile.open(path)
    note = elf.sections.get(".note.stapsdt")
    if note is None:
        return ()
    # pyelftools (a tenth of a second to import) only for files that do carry USDT notes.
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import NoteSection

    base_sec = elf.sections.get(".stapsdt.base")
    probes: list[UsdtProbe] = []
    try:
        with open(path, "rb") as f:
            section = ELFFile(f).get_section_by_name(".note.stapsdt")
            if not isinstance(section, NoteSection):
                return ()
            notes = [n["n_descdata"] for n in section.iter_notes()
                     if n["n_name"] == "stapsdt" and _note_type(n["n_type"]) == NT_STAPSDT]
    except ELFError as e:
        raise TargetError(f"{path}: bad .note.stapsdt ({e})") from None
    for desc in notes:
        probe = _parse_note(elf, desc, base_sec.addr if base_sec else None)
        if probe is not None:
            probes.append(probe)
    return tuple(probes)


def _note_type(n_type: Any) -> int:
    # pyelftools names type 3 after GNU notes (NT_GNU_BUILD_ID); stapsdt reuses the number.
    if isinstance(n_type, int):
        return n_type
    return {"NT_GNU_BUILD_ID": 3}.get(str(n_type), -1)


def _parse_note(elf: ElfFile, desc: bytes, base_addr: int | None) -> UsdtProbe | None:
    if len(desc) < _NOTE_ADDRS.size:
        return None
    pc, note_base, sema = _NOTE_ADDRS.unpack_from(desc)
    strings = desc[_NOTE_ADDRS.size:].split(b"\0")
    if len(strings) < 3:
        return None
    provider, name, arg_spec = (s.decode("utf-8", "replace") for s in strings[:3])
    if base_addr is not None and note_base:
        pc += base_addr - note_base
        if sema:
            sema += base_addr - note_base
    offset = elf.vaddr_to_offset(pc)
    if offset is None:
        return None  # a note for code that is not in the file: nothing to probe
    args: tuple[UsdtArg, ...] = ()
    error = None
    try:
        args = tuple(UsdtArg.parse(s) for s in arg_spec.split())
    except ResolveError as e:
        error = e.message
    return UsdtProbe(
        path=elf.path, provider=provider, name=name, pc=pc, offset=offset, base=note_base,
        semaphore=sema, semaphore_offset=elf.vaddr_to_offset(sema) if sema else None,
        arg_spec=arg_spec, args=args, args_error=error,
    )

"""The dynamic linker's rendezvous: where r_debug is, where its r_brk hook is, what it says.

glibc's ld.so keeps `struct r_debug` (`_r_debug`, also reachable through DT_DEBUG in the
main executable's dynamic section once ld.so has started) and calls the empty function at
`r_brk` (`_dl_debug_state`) before and after every change of the loaded objects, with
`r_state` saying which: RT_ADD/RT_DELETE (about to change), RT_CONSISTENT (done). A
breakpoint there is how a debugger learns of dlopen/dlclose without polling; the runtime
then re-reads /proc/PID/maps, which is the truth about what is mapped.

Layout (x86-64): r_version int @0, r_map @8, r_brk @16, r_state int @24, r_ldbase @32;
link_map: l_addr @0, l_name @8, l_ld @16, l_next @24.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from runtime import procfs
from runtime.elfsyms import ElfFile
from runtime.errors import MemoryReadError, UprobeError
from runtime.memory import ProcessMemory
from runtime.procmaps import Mapping, find_mapping
from runtime.resolve import Placement
from runtime.x86.ops import Memory, RetOps, SiteOps

RT_CONSISTENT = 0
RT_ADD = 1
RT_DELETE = 2

AT_PHDR = 3
AT_PHNUM = 5
AT_BASE = 7
PT_DYNAMIC = 2
PT_PHDR = 6
DT_NULL = 0
DT_DEBUG = 21

R_DEBUG_SIZE = 40
LINK_MAP_SIZE = 40
MAX_LINK_MAPS = 4096
_PHDR = struct.Struct("<IIQQQQQQ")
_R_DEBUG = struct.Struct("<i4xQQi4xQ")
_LINK_MAP = struct.Struct("<QQQQQ")


@dataclass(frozen=True)
class RDebug:
    """One read of `struct r_debug`."""

    version: int
    map: int
    brk: int
    state: int
    ldbase: int


@dataclass(frozen=True)
class LinkMap:
    """One loaded object as ld.so lists it: load bias, name ("" for the main program),
    runtime address of its dynamic section."""

    addr: int
    l_addr: int
    name: str
    l_ld: int


@dataclass(frozen=True)
class FilePosition:
    """A runtime address seen as (file identity, file offset) through the maps."""

    path: str
    dev: int
    ino: int
    offset: int


@dataclass
class MappingWatch:
    """Per-process rendezvous state: where r_debug is (0 = not found yet) and the
    executable file mappings seen at the last sync, to tell which sites went away."""

    r_debug: int = 0
    exec_maps: list[Mapping] = field(default_factory=list)
    hooked: bool = False  # an internal breakpoint sits on r_brk

    def copy(self) -> MappingWatch:
        """A fork child's view: same addresses, same mappings."""
        return MappingWatch(self.r_debug, list(self.exec_maps), self.hooked)


def read_r_debug(mem: ProcessMemory, addr: int) -> RDebug:
    return RDebug(*_R_DEBUG.unpack(mem.read(addr, R_DEBUG_SIZE)))


def link_maps(mem: ProcessMemory, r_debug: int) -> list[LinkMap]:
    """The list of loaded objects, in ld.so's order (bounded against a corrupt list)."""
    out: list[LinkMap] = []
    node = read_r_debug(mem, r_debug).map
    while node and len(out) < MAX_LINK_MAPS:
        l_addr, l_name, l_ld, l_next, _ = _LINK_MAP.unpack(mem.read(node, LINK_MAP_SIZE))
        name = mem.read_str(l_name, 4096).decode(errors="replace") if l_name else ""
        out.append(LinkMap(node, l_addr, name, l_ld))
        node = l_next
    return out


def interpreter(maps: list[Mapping], auxv: dict[int, int]) -> Mapping | None:
    """The dynamic linker's first mapping: the one at AT_BASE (0 for static programs)."""
    base = auxv.get(AT_BASE, 0)
    if not base:
        return None
    return next((m for m in maps if m.start == base and m.inode), None)


def dt_debug(mem: ProcessMemory, auxv: dict[int, int]) -> int:
    """r_debug's address from DT_DEBUG in the main program's dynamic section in memory;
    0 before ld.so has filled it in (at exec) or for a static program."""
    phdr, phnum = auxv.get(AT_PHDR, 0), auxv.get(AT_PHNUM, 0)
    if not phdr or not phnum:
        return 0
    try:
        table = mem.read(phdr, phnum * _PHDR.size)
        headers = [_PHDR.unpack_from(table, i * _PHDR.size) for i in range(phnum)]
        # The bias is where the headers are minus where PT_PHDR says they are.
        pt_phdr = next((h for h in headers if h[0] == PT_PHDR), None)
        if pt_phdr is None:
            return 0
        bias = phdr - pt_phdr[3]
        dyn = next((h for h in headers if h[0] == PT_DYNAMIC), None)
        if dyn is None:
            return 0
        data = mem.read(bias + dyn[3], dyn[6])
    except MemoryReadError:
        return 0
    for i in range(0, len(data) - 15, 16):
        tag, value = struct.unpack_from("<qQ", data, i)
        if tag == DT_NULL:
            break
        if tag == DT_DEBUG:
            return value
    return 0


def locate_r_debug(pid: int, mem: ProcessMemory, maps: list[Mapping]) -> int:
    """r_debug's runtime address: DT_DEBUG when set, else `_r_debug` in ld.so; 0 if
    neither (a static program)."""
    auxv = procfs.auxv(pid)
    addr = dt_debug(mem, auxv)
    if addr:
        return addr
    ld = interpreter(maps, auxv)
    if ld is None:
        return 0
    found = _symbol_address(pid, ld, maps, "_r_debug")
    return found or 0


def locate_r_brk(pid: int, mem: ProcessMemory, maps: list[Mapping], r_debug: int) -> int:
    """r_brk's runtime address: from r_debug once ld.so initialised it, else the
    `_dl_debug_state` symbol of ld.so (present at exec, before ld.so has run); 0 if none."""
    if r_debug:
        try:
            brk = read_r_debug(mem, r_debug).brk
        except MemoryReadError:
            brk = 0
        if brk:
            return brk
    ld = interpreter(maps, procfs.auxv(pid))
    if ld is None:
        return 0
    return _symbol_address(pid, ld, maps, "_dl_debug_state") or 0


def r_brk_placement(pid: int, mem: ProcessMemory, maps: list[Mapping],
                    r_debug: int) -> Placement | None:
    """The r_brk hook as a probe placement (file identity + offset), None without one."""
    brk = locate_r_brk(pid, mem, maps, r_debug)
    pos = file_position(maps, brk) if brk else None
    if pos is None:
        return None
    # vaddr holds the runtime address: the hook is internal and never listed.
    return Placement(pos.path, pos.dev, pos.ino, pos.offset, "r_brk", 0, brk)


class RetInTracer(RetOps):
    """A plain `ret` (r_brk is an empty function) performed by the tracer: the hook then
    needs no XOL slot, so watching the rendezvous never injects an area of its own."""

    @property
    def slot_size(self) -> int:
        return 0

    def emulate(self, regs: Any, mem: Memory) -> bool:
        regs.rip = int.from_bytes(mem.read(regs.rsp, 8), "little")
        regs.rsp += 8
        return True


def emulate_ret(ops: SiteOps) -> SiteOps:
    """The r_brk site's ops: a one-byte `ret` (not `ret imm16`) done in the tracer."""
    if isinstance(ops, RetOps) and ops.length == 1:
        return RetInTracer(ops.insn)
    return ops


def _symbol_address(pid: int, ld: Mapping, maps: list[Mapping], name: str) -> int | None:
    try:
        elf = ElfFile.open(ld.path)
    except (UprobeError, OSError):
        return None
    if (elf.identity.dev, elf.identity.ino) != (ld.dev, ld.inode):
        return None  # replaced on disk since it was mapped
    vaddr = elf.symbol_vaddr(name)
    bias = elf.load_bias(pid, maps)
    if vaddr is None or bias is None:
        return None
    return vaddr + bias


def file_position(maps: list[Mapping], addr: int) -> FilePosition | None:
    """Which file and offset back runtime `addr` (None for anonymous memory)."""
    m = find_mapping(maps, addr)
    if m is None or not m.inode:
        return None
    return FilePosition(m.path, m.dev, m.inode, m.file_offset_of(addr))


def executable_file_maps(maps: list[Mapping]) -> list[Mapping]:
    return [m for m in maps if m.executable and m.inode]


def gone_addresses(addrs: list[int], old: list[Mapping], new: list[Mapping]) -> list[int]:
    """Those of `addrs` whose file mapping went away (or now maps something else) between
    the snapshots `old` and `new` of executable file mappings."""
    gone = []
    for addr in addrs:
        now = file_position(new, addr)
        if now is None:
            gone.append(addr)
            continue
        before = file_position(old, addr)
        if before is not None and (before.dev, before.ino, before.offset) != (
            now.dev, now.ino, now.offset
        ):
            gone.append(addr)
    return gone


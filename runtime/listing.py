"""`uprobe -l`: the probes a query names, one per line, spelled as a user would paste them.

The query arrives normalised: the command line parses the pattern with the language's own
probe spellings (uplang.probes.interpret_listing), so every alias a script accepts
(`u:`, `ur:`, `U:`, `pid$target`) lists too, and this module never sees a spelling.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime.demangle import demangle
from runtime.elfsyms import ElfFile, Symbol
from runtime.errors import ResolveError, TargetError, UprobeError
from runtime.ifunc import RESOLVER_SUFFIX, implementation
from runtime.procmaps import mapped_files, read_maps
from runtime.resolve import open_targets, shown_target
from runtime.usdt import UsdtProbe, read_probes

if TYPE_CHECKING:
    from runtime.dwarf.source import DwarfTypes


@dataclass(frozen=True)
class ProbeQuery:
    """What to list.

    kind: 'uprobe', 'uretprobe' or 'usdt' (a PlanProbe kind), or "" for every uprobe and
    USDT probe of `target` (a path, a library, or ""/"*" with a pid: every file mapped
    executable in the process). func: a function name or glob; usdt_provider ("" = any)
    and usdt_name (a glob) for usdt.
    """

    kind: str
    target: str
    func: str = "*"
    usdt_provider: str = ""
    usdt_name: str = "*"


def list_probes(query: ProbeQuery, pid: int | None = None, verbose: bool = False,
                demangle: bool = True, debug_dirs: tuple[str, ...] = ()) -> list[str]:
    """Sorted probe lines for `query`. `verbose` appends the function's address and size
    (IFUNCs marked with the implementation the process uses), or the USDT site, argument
    specs and semaphore, and under a function its parameters from DWARF, as bpftrace -lv
    prints them. C++ names show demangled (quoted, ready to paste) unless `demangle` is
    False."""
    shown = _Shown(verbose, demangle, debug_dirs, pid)
    if not query.kind:
        return _list_everything(query.target, pid, shown)
    if query.kind == "usdt":
        return sorted({line for elf in open_targets(query.target, pid)
                       for line in _usdt_lines(elf, shown_target(query.target, elf.path),
                                               query.usdt_provider, query.usdt_name,
                                               verbose)})
    return sorted({line for elf in open_targets(query.target, pid)
                   for line in _function_lines(elf, shown_target(query.target, elf.path),
                                               query.kind, query.func, shown)})


def _list_everything(target: str, pid: int | None, shown: _Shown) -> list[str]:
    if target in ("", "*"):
        if pid is None:
            raise ResolveError("listing every probe needs a process: add -p PID")
        elfs = []
        for path in mapped_files(read_maps(pid), executable_only=True):
            try:
                elfs.append(ElfFile.open(path))
            except TargetError:
                continue  # deleted or unreadable mapping: nothing to list
    else:
        elfs = open_targets(target, pid)
    lines: set[str] = set()
    for elf in elfs:
        file = shown_target(target if target != "*" else "", elf.path)
        lines.update(_function_lines(elf, file, "uprobe", "*", shown))
        lines.update(_usdt_lines(elf, file, "", "*", shown.verbose))
    return sorted(lines)


@dataclass
class _Shown:
    """How listed functions are shown; `params` reads DWARF once per file, lazily."""

    verbose: bool
    demangle: bool
    debug_dirs: tuple[str, ...]
    pid: int | None = None
    _types: dict[str, DwarfTypes] = field(default_factory=dict)

    def name(self, sym: Symbol) -> str:
        if not self.demangle:
            return sym.name
        name = demangle(sym.name)
        return name if name == sym.name else '"' + name + '"'

    def params(self, elf: ElfFile, sym: Symbol) -> list[str]:
        """`    TYPE NAME` per parameter, or nothing when the file has no DWARF for it."""
        from runtime.dwarf.source import DwarfTypes  # pyelftools' DWARF: only `-lv` reads it

        types = self._types.setdefault(elf.path, DwarfTypes([], roots=self.debug_dirs))
        try:
            info = types.info(elf.path)
        except UprobeError:
            return []
        fn = info.function_at(sym.vaddr) if info is not None else None
        if info is None or fn is None:
            return []
        return [f"    {info.types.spelling(info.param_type(p))} {info.param_name(p)}".rstrip()
                for p in info.params(fn)]


def _function_lines(elf: ElfFile, file: str, kind: str, func: str, shown: _Shown
                    ) -> list[str]:
    """`file`: the file as the user named it (resolve.shown_target)."""
    syms = elf.match(func)
    if not shown.verbose:
        return [f"{kind}:{file}:{shown.name(sym)}" for sym in syms]
    out = []
    for sym in syms:
        head = f"{kind}:{file}:{shown.name(sym)}  {_function_detail(elf, sym, shown)}"
        out.append("\n".join([head, *shown.params(elf, sym)]))
    return out


def _function_detail(elf: ElfFile, sym: Symbol, shown: _Shown) -> str:
    extra = "" if sym.binding == "global" else f" {sym.binding}"
    if sym.kind == "ifunc":
        # Probes go to the implementation; say which one, as far as a process shows it.
        impl = implementation(elf, sym, shown.pid)
        hit = elf.symbolize(impl) if impl is not None else None
        target = (hit[0] if hit and not hit[1] else f"{impl:#x}") if impl is not None else "?"
        extra += f" ifunc -> {target}; resolver: {sym.name}{RESOLVER_SUFFIX}"
    return f"[{sym.vaddr:#x}, {sym.size} bytes{extra}]"


def _usdt_lines(elf: ElfFile, file: str, provider: str, name: str, verbose: bool
                ) -> list[str]:
    lines = []
    for probe in read_probes(elf.path):
        if provider and not fnmatch.fnmatchcase(probe.provider, provider):
            continue
        if not fnmatch.fnmatchcase(probe.name, name):
            continue
        line = f"usdt:{file}:{probe.provider}:{probe.name}"
        lines.append(f"{line}  {_usdt_detail(probe)}" if verbose else line)
    return lines


def _usdt_detail(probe: UsdtProbe) -> str:
    sema = f"semaphore {probe.semaphore:#x}" if probe.semaphore else "no semaphore"
    args = probe.arg_spec or "no args"
    if probe.args_error:
        args += f" (unparsed: {probe.args_error})"
    return f"[{probe.pc:#x}, args: {args}, {sema}]"

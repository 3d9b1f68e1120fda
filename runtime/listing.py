"""`uprobe -l`: the probes a query names, one per line, spelled as a user would paste them.

The query arrives normalised: the command line parses the pattern with the language's own
probe spellings (uplang.probes.interpret_listing), so every alias a script accepts
(`u:`, `ur:`, `U:`, `pid$target`) lists too, and this module never sees a spelling.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from runtime.elfsyms import ElfFile, Symbol
from runtime.errors import ResolveError, TargetError
from runtime.procmaps import mapped_files, read_maps
from runtime.resolve import is_glob, open_targets
from runtime.usdt import UsdtProbe, read_probes


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


def list_probes(query: ProbeQuery, pid: int | None = None, verbose: bool = False) -> list[str]:
    """Sorted probe lines for `query`. `verbose` appends the function's address and size,
    or the USDT site, argument specs and semaphore."""
    if not query.kind:
        return _list_everything(query.target, pid, verbose)
    if query.kind == "usdt":
        return sorted({line for elf in open_targets(query.target, pid)
                       for line in _usdt_lines(elf, query.usdt_provider, query.usdt_name,
                                               verbose)})
    return sorted({line for elf in open_targets(query.target, pid)
                   for line in _function_lines(elf, query.kind, query.func, verbose)})


def _list_everything(target: str, pid: int | None, verbose: bool) -> list[str]:
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
        lines.update(_function_lines(elf, "uprobe", "*", verbose))
        lines.update(_usdt_lines(elf, "", "*", verbose))
    return sorted(lines)


def _function_lines(elf: ElfFile, kind: str, func: str, verbose: bool) -> list[str]:
    syms = elf.match(func) if is_glob(func) else elf.functions_named(func)
    if not verbose:
        return [f"{kind}:{elf.path}:{sym.name}" for sym in syms]
    return [f"{kind}:{elf.path}:{sym.name}  {_function_detail(sym)}" for sym in syms]


def _function_detail(sym: Symbol) -> str:
    extra = "" if sym.binding == "global" else f" {sym.binding}"
    extra += " ifunc" if sym.kind == "ifunc" else ""
    return f"[{sym.vaddr:#x}, {sym.size} bytes{extra}]"


def _usdt_lines(elf: ElfFile, provider: str, name: str, verbose: bool) -> list[str]:
    lines = []
    for probe in read_probes(elf.path):
        if provider and not fnmatch.fnmatchcase(probe.provider, provider):
            continue
        if not fnmatch.fnmatchcase(probe.name, name):
            continue
        line = f"usdt:{elf.path}:{probe.provider}:{probe.name}"
        lines.append(f"{line}  {_usdt_detail(probe)}" if verbose else line)
    return lines


def _usdt_detail(probe: UsdtProbe) -> str:
    sema = f"semaphore {probe.semaphore:#x}" if probe.semaphore else "no semaphore"
    args = probe.arg_spec or "no args"
    if probe.args_error:
        args += f" (unparsed: {probe.args_error})"
    return f"[{probe.pc:#x}, args: {args}, {sema}]"

"""`uprobe -l`: the probes a pattern names, one per line, spelled as a user would paste them."""

from __future__ import annotations

import fnmatch

from runtime.elfsyms import ElfFile, Symbol
from runtime.errors import ResolveError, TargetError
from runtime.procmaps import mapped_files, read_maps
from runtime.resolve import is_glob, open_targets
from runtime.usdt import UsdtProbe, read_probes

_FUNCTION_KINDS = ("uprobe", "uretprobe")


def list_probes(pattern: str, pid: int | None = None, verbose: bool = False) -> list[str]:
    """Sorted probe lines for `pattern`:

    `uprobe:TARGET:FUNCGLOB`, `uretprobe:...`, `usdt:TARGET[:PROVIDER]:NAMEGLOB`,
    `usdt:TARGET`, a bare path or library (all its uprobes and USDT probes), or `*` / ""
    with `pid`: every file mapped executable in the process. `verbose` appends the
    function's address and size, or the USDT site, argument specs and semaphore.
    """
    kind, sep, rest = pattern.partition(":")
    if not sep or kind not in (*_FUNCTION_KINDS, "usdt"):
        return _list_everything(pattern, pid, verbose)
    if kind == "usdt":
        target, provider, name = _split_usdt(rest)
        return sorted({line for elf in open_targets(target, pid)
                       for line in _usdt_lines(elf, provider, name, verbose)})
    target, _, func = rest.partition(":")
    return sorted({line for elf in open_targets(target, pid)
                   for line in _function_lines(elf, kind, func or "*", verbose)})


def _split_usdt(rest: str) -> tuple[str, str, str]:
    """TARGET, PROVIDER ("" = any) and NAME of `usdt:TARGET[:[PROVIDER:]NAME]`."""
    parts = rest.split(":")
    if len(parts) == 1:
        return parts[0], "", "*"
    if len(parts) == 2:
        return parts[0], "", parts[1] or "*"
    return ":".join(parts[:-2]), parts[-2], parts[-1] or "*"


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

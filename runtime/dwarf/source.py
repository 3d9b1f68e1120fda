"""The checks' TypeSource backed by DWARF: signatures of probed functions, types by name.

The CLI (and the REPL) build one `DwarfTypes` per script before the checks run, so that
`args.x`, casts to program types and member names are judged before anything is attached.
Files are opened, and their DWARF parsed, only when the checks ask.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from runtime.dwarf.debugfile import DebugLocation, how_to_get, locate
from runtime.dwarf.info import DebugInfo, FunctionDie
from runtime.dwarf.lines import find_line, parse_line_spec
from runtime.dwarf.locals import locals_at
from runtime.elfsyms import ElfFile, Symbol
from runtime.errors import UprobeError
from runtime.resolve import find_targets
from uplang import ast
from uplang.plan import FunctionSig, Param, TypeLayout

_INT_REGS = 6


class SignatureError(UprobeError):
    """No signature for a probe; the message goes into the script's error report."""


@dataclass
class DwarfTypes:
    """Types for one script: `targets` are the uprobe target spellings it uses."""

    targets: Sequence[str]
    pid: int | None = None
    command: str | None = None
    roots: Sequence[str] = ()
    _infos: dict[str, DebugInfo | None] = field(default_factory=dict)
    _where: dict[str, DebugLocation] = field(default_factory=dict)

    @classmethod
    def for_program(cls, program: ast.Program, pid: int | None = None,
                    command: str | None = None, roots: Sequence[str] = ()) -> DwarfTypes:
        targets: list[str] = []
        for clause in program.clauses:
            for spec in clause.probes:
                if spec.provider in ("uprobe", "uretprobe") and spec.target not in targets:
                    targets.append(spec.target)
        return cls(targets, pid, command, roots)

    # -- TypeSource -------------------------------------------------------------------

    def layout(self, name: str) -> TypeLayout | None:
        for path in self._all_files():
            info = self.info(path)
            if info is None:
                continue
            lay = info.types.layout(name)
            if lay is not None:
                return lay
        return None

    def searched(self) -> str:
        files = [loc.path or loc.binary for loc in self._where.values()]
        return ", ".join(files) if files else "no file (the script probes no function)"

    def signature(self, probe: ast.ProbeSpec) -> FunctionSig | str:
        """uplang.typeenv.TypeSource.signature: the signature, or why there is none."""
        try:
            return self._probe_signature(probe)
        except SignatureError as e:
            return e.message

    def _probe_signature(self, probe: ast.ProbeSpec) -> FunctionSig:
        line = parse_line_spec(probe.func)
        if line is not None and probe.address is None and not probe.offset:
            paths = self._files(probe.target)
            if not any(ElfFile.open(p).match(probe.func) for p in paths):
                return self._line_variables(paths[0], *line)
        if probe.address is not None or probe.offset:
            raise SignatureError("'args' needs a probe on a function entry, not an address or offset")
        sigs: list[tuple[str, FunctionSig]] = []
        for path in self._files(probe.target):
            elf = ElfFile.open(path)
            syms = elf.match(probe.func)
            for sym in _unique_sites(syms):
                sigs.append((sym.name, self._signature(path, sym)))
        if not sigs:
            raise SignatureError(f"no function '{probe.func}' to read 'args' from")
        first_name, first = sigs[0]
        for name, sig in sigs[1:]:
            if sig != first:
                raise SignatureError(f"'{first_name}' and '{name}' (both matched by "
                                 f"'{probe.func}') have different parameters: 'args' needs "
                                 f"one signature per clause")
        return first

    # -- files ------------------------------------------------------------------------

    def _files(self, target: str) -> list[str]:
        try:
            if target == "" and self.pid is None and self.command:
                argv = shlex.split(self.command)
                exe = shutil.which(argv[0]) if argv else None
                if exe is None:
                    raise SignatureError(f"cannot find the program of -c '{self.command}'")
                return [os.path.realpath(exe)]
            return [os.path.realpath(p) for p in find_targets(target, self.pid)]
        except UprobeError as e:
            raise SignatureError(e.message) from None

    def _all_files(self) -> list[str]:
        out: list[str] = []
        for target in self.targets:
            try:
                files = self._files(target)
            except SignatureError:
                continue
            out.extend(p for p in files if p not in out)
        return out

    def info(self, path: str) -> DebugInfo | None:
        if path not in self._infos:
            loc = locate(path, self.roots)
            self._where[path] = loc
            self._infos[path] = DebugInfo.open(loc.path) if loc.path else None
        return self._infos[path]

    def location(self, path: str) -> DebugLocation:
        self.info(path)
        return self._where[path]

    # -- signatures -------------------------------------------------------------------

    def _line_variables(self, path: str, file: str, line: int) -> FunctionSig:
        """At a source-line probe `args` holds the variables visible there."""
        info = self.info(path)
        if info is None:
            raise SignatureError(how_to_get(self._where[path]))
        hit = find_line(info, file, line)
        if hit.vaddr is None:
            raise SignatureError(f"line {line} of {file} has no code in {path}")
        found = locals_at(info, hit.vaddr, path)
        if found is None:
            raise SignatureError(f"no function's DWARF in {path} covers {file}:{line}")
        params = []
        for var in found:
            ref, count = info.types.ref(info.param_type(var.die))
            if count is not None and var.location is not None and var.location[0] == "breg":
                # An array variable is its memory: read it through a pointer to it.
                ref = ast.TypeRef(ref.name, ref.pointer + 1)
                params.append(Param(var.name, ref, None, "", ("addr", *var.location[1:])))
                continue
            params.append(Param(var.name, ref, None, var.why, var.location))
        return FunctionSig(tuple(params), None)

    def _signature(self, path: str, sym: Symbol) -> FunctionSig:
        info = self.info(path)
        if info is None:
            raise SignatureError(how_to_get(self._where[path]))
        fn = info.function_at(sym.vaddr)
        if fn is None:
            raise SignatureError(f"the DWARF of {path} ({self._where[path].path}) does not "
                             f"describe '{sym.name}'; was its object file built with -g?")
        return signature_of(info, fn)


def signature_of(info: DebugInfo, fn: FunctionDie) -> FunctionSig:
    """Parameters with the integer argument slot each occupies under the SysV ABI."""
    params: list[Param] = []
    slot = 0
    stack_unsure = False
    for die in info.params(fn):
        tdie = info.param_type(die)
        ref, count = info.types.ref(tdie)
        if count is not None:  # an array parameter is a pointer
            ref = ast.TypeRef(ref.name, ref.pointer + 1)
        name = info.param_name(die) or f"arg{len(params)}"
        cls = info.types.arg_class(tdie)
        if cls == "float":
            params.append(Param(name, ref, None, "a floating-point argument (passed in an "
                                                 "SSE register)"))
            continue
        if cls == "memory":
            size = info.types.byte_size(tdie)
            params.append(Param(name, ref, None, "a struct or union passed by value"))
            if size <= 16:
                slot += (size + 7) // 8
            else:
                stack_unsure = True
            continue
        if stack_unsure and slot >= _INT_REGS:
            params.append(Param(name, ref, None, "on the stack after a struct passed by value"))
        else:
            params.append(Param(name, ref, slot))
        slot += 1
    rdie = info.return_type(fn)
    ret = None if rdie is None else info.types.ref(rdie)[0]
    if ret is not None and ret.name == "void" and not ret.pointer:
        ret = None
    if ret is not None and info.types.arg_class(rdie) != "int":
        ret = None  # a float or struct return is not in rax as an integer
    return FunctionSig(tuple(params), ret)


def _unique_sites(syms: list[Symbol]) -> list[Symbol]:
    seen: set[int] = set()
    out = []
    for sym in syms:
        if sym.vaddr not in seen:
            seen.add(sym.vaddr)
            out.append(sym)
    return out

"""Types from the traced program, as the checks see them: plain data and one protocol.

The language never reads DWARF itself (uplang/ does not import the runtime). The
application layer (the CLI, the REPL) hands the checks a `TypeSource`, usually
`runtime.dwarf.source.DwarfTypes`, which answers in uplang's own vocabulary: TypeLayouts
(the same model as in-script struct definitions) and FunctionSigs. Types declared in the
script win over the program's: the checks ask the source only for names the script lacks.
"""

from __future__ import annotations

from typing import Protocol

from uplang import ast
from uplang.plan import FunctionSig, TypeLayout


class TypeSource(Protocol):
    def layout(self, name: str) -> TypeLayout | None:
        """The struct/union/enum called `name` ('struct Foo'), or None if the program's
        debug info has no such type."""

    def signature(self, probe: ast.ProbeSpec) -> FunctionSig | str:
        """The DWARF signature of the function(s) `probe` names, or why there is none (one
        user-facing sentence: no debug info and how to get it, no such function, ...)."""

    def searched(self) -> str:
        """The files whose DWARF was searched, for 'type not found' messages."""

"""C struct/union/enum layout with the x86-64 System V rules, for in-script definitions.

Each member goes at the next multiple of its alignment; an aggregate's alignment is its
largest member's, and its size is padded to that alignment. Arrays align like one element.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uplang import ast
from uplang.diagnostics import Diagnostic, did_you_mean
from uplang.plan import MemberLayout, TypeLayout
from uplang.typeenv import TypeSource
from uplang.vocab.ctypes import BASIC_TYPES

# size == alignment for every scalar on x86-64 SysV; void has none.
SCALAR_SIZES: dict[str, int] = {t.name: t.size for t in BASIC_TYPES if t.size}
POINTER_SIZE = 8
ENUM_SIZE = 4


@dataclass
class Layouts:
    """The laid-out types by name ('struct Foo', 'union U', 'enum E') and the problems."""

    types: dict[str, TypeLayout] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    # The program's own types (DWARF), asked only for names the script does not define.
    source: TypeSource | None = None

    def get(self, name: str) -> TypeLayout | None:
        """The script's type called `name`, else the program's (adopted into `types`, with
        the aggregates it holds by value, so that the plan carries all it needs)."""
        layout = self.types.get(name)
        if layout is not None or self.source is None:
            return layout
        if not name.startswith(("struct ", "union ", "enum ")):
            return None
        layout = self.source.layout(name)
        if layout is None:
            return None
        self.types[name] = layout
        for m in layout.members:
            if not m.type.pointer and m.type.name not in self.types:
                self.get(m.type.name)
        return layout

    def size_align(self, ref: ast.TypeRef) -> tuple[int, int] | None:
        """None when the type is unknown or has no size (void)."""
        if ref.pointer:
            return POINTER_SIZE, POINTER_SIZE
        if ref.name in SCALAR_SIZES:
            return SCALAR_SIZES[ref.name], SCALAR_SIZES[ref.name]
        layout = self.get(ref.name)
        if layout is None:
            return None
        return layout.size, layout.align

    def member(self, aggregate: str, name: str) -> MemberLayout | None:
        layout = self.get(aggregate)
        if layout is None:
            return None
        return next((m for m in layout.members if m.name == name), None)


def qualified(defn: ast.TypeDef) -> str:
    return f"{defn.kind} {defn.name}"


def lay_out(defs: tuple[ast.TypeDef, ...]) -> Layouts:
    """Lay out definitions in order: a member by value must use a type defined before it."""
    out = Layouts()
    enum_values: dict[str, ast.TypeDef] = {}
    for defn in defs:
        name = qualified(defn)
        if name in out.types:
            out.problems.append(Diagnostic.at(defn.span, f"{name} is defined twice"))
            continue
        if defn.kind == "enum":
            _enum(defn, out, enum_values)
        else:
            _aggregate(defn, out)
    return out


def _enum(defn: ast.TypeDef, out: Layouts, seen: dict[str, ast.TypeDef]) -> None:
    for ident, _value in defn.enumerators:
        if ident in seen:
            out.problems.append(
                Diagnostic.at(defn.span, f"enumerator '{ident}' is already defined")
            )
        seen[ident] = defn
    out.types[qualified(defn)] = TypeLayout(
        "enum", defn.name, ENUM_SIZE, ENUM_SIZE, enumerators=defn.enumerators
    )


def _aggregate(defn: ast.TypeDef, out: Layouts) -> None:
    members: list[MemberLayout] = []
    offset = 0
    size = 0
    align = 1
    names: set[str] = set()
    for fld in defn.fields:
        if fld.name in names:
            out.problems.append(Diagnostic.at(fld.span, f"duplicate member '{fld.name}'"))
            continue
        names.add(fld.name)
        sa = out.size_align(fld.type)
        if sa is None:
            out.problems.append(_unknown_member_type(fld, defn, out))
            continue
        msize, malign = sa
        count = fld.array_len if fld.array_len is not None else 1
        if defn.kind == "struct":
            offset = -(-offset // malign) * malign
            members.append(MemberLayout(fld.name, offset, msize * count, fld.type, fld.array_len))
            offset += msize * count
            size = offset
        else:
            members.append(MemberLayout(fld.name, 0, msize * count, fld.type, fld.array_len))
            size = max(size, msize * count)
        align = max(align, malign)
    size = -(-size // align) * align
    out.types[qualified(defn)] = TypeLayout(defn.kind, defn.name, size, align, tuple(members))


def _unknown_member_type(fld: ast.FieldDef, defn: ast.TypeDef, out: Layouts) -> Diagnostic:
    if fld.type.name == qualified(defn):
        return Diagnostic.at(
            fld.span, f"{fld.type.name} contains itself", "a member can point to it: add '*'"
        )
    if fld.type.name == "void":
        return Diagnostic.at(fld.span, f"member '{fld.name}' has type void")
    hint = did_you_mean(fld.type.name, out.types) or "define it in the script, before its use"
    return Diagnostic.at(fld.span, f"unknown type '{fld.type.name}' for member '{fld.name}'", hint)

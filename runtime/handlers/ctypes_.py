"""Compile-time value types of handler expressions.

The handler compiler needs static types only where the language is C-like: the width and
signedness of integers read from target memory, what `*p`, `p[i]` and `p->f` read, and
whether `==` compares strings or integers. Everything else is plain Python values at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from uplang import ast
from uplang.plan import TypeLayout
from uplang.vocab.ctypes import BASIC_TYPES

# The plan's integer type names (uplang.vocab.ctypes; the parser has mapped every spelling
# onto one): width and sign. `void` counts as one unsigned byte so that arithmetic on a
# `void *` steps by bytes, as gcc does.
INT_TYPES: dict[str, tuple[int, bool]] = {
    **{t.name: (t.size, t.signed) for t in BASIC_TYPES if t.integer},
    "void": (1, False),
}


@dataclass(frozen=True)
class VType:
    """kind: 'int', 'str', 'ptr', 'record' (a struct/union lvalue: its address), 'array'
    (an in-memory array lvalue: its address), 'tuple', 'buf', 'stack', 'none'."""

    kind: str
    size: int = 8
    signed: bool = True
    target: VType | None = None  # pointee (ptr) or element (array)
    layout: TypeLayout | None = None
    count: int = 0  # array length
    items: tuple[VType, ...] = ()  # tuple element types


INT64 = VType("int")
UINT64 = VType("int", 8, False)
STR = VType("str", 0)
NONE = VType("none", 0)
BUF = VType("buf", 0)
STACK = VType("stack", 0)


def int_type(size: int, signed: bool) -> VType:
    return VType("int", size, signed)


def resolve_typeref(ref: ast.TypeRef, layouts: dict[str, TypeLayout]) -> VType:
    """The VType a TypeRef names; pointers wrap the base type `pointer` times."""
    base: VType
    name = ref.name
    bare = name.split(" ", 1)[1] if name.startswith(("struct ", "union ", "enum ")) else name
    if name in INT_TYPES:
        size, signed = INT_TYPES[name]
        base = int_type(size, signed)
    elif bare in layouts:
        lay = layouts[bare]
        if lay.kind == "enum":
            base = int_type(lay.size, lay.signed)
        else:
            base = VType("record", lay.size, layout=lay)
    else:
        base = INT64
    for _ in range(ref.pointer):
        base = VType("ptr", 8, False, target=base)
    return base


def member_type(member_ref: ast.TypeRef, array_len: int | None,
                layouts: dict[str, TypeLayout]) -> VType:
    """The type of a struct member; `char name[N]` reads as a string like bpftrace does."""
    elem = resolve_typeref(member_ref, layouts)
    if array_len is None:
        return elem
    if elem.kind == "int" and elem.size == 1 and member_ref.name == "char":
        return VType("str", array_len)
    return VType("array", elem.size * array_len, target=elem, count=array_len)


def size_of(t: VType) -> int:
    return {"int": t.size, "ptr": 8, "record": t.size, "array": t.size}.get(t.kind, 8)

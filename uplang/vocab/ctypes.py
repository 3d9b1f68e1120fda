"""C's basic types: every accepted spelling, the name the plan uses, its size and sign.

The parser maps spellings onto names (`unsigned long long` -> `uint64`), the layout of
in-script structs takes sizes from here, the handler compiler widths and signedness, and
highlighting and completion the words. The grammar lists the same words as terminals
(grammar/uplang.lark `_type_word`); a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class BasicType:
    """size 0: no size (void). integer: read from memory as an integer of this width."""

    name: str
    size: int
    signed: bool
    integer: bool = True


BASIC_TYPES: tuple[BasicType, ...] = (
    BasicType("char", 1, True),
    *(BasicType(f"{sign}{bits}", bits // 8, sign == "int")
      for bits in (8, 16, 32, 64) for sign in ("int", "uint")),
    BasicType("bool", 1, False),
    BasicType("void", 0, False, integer=False),
    BasicType("float", 4, True, integer=False),
    BasicType("double", 8, True, integer=False),
)
BY_NAME: MappingProxyType[str, BasicType] = MappingProxyType({t.name: t for t in BASIC_TYPES})

# Every spelling the language accepts -> the plan's name (x86-64 LP64 sizes).
SPELLINGS: MappingProxyType[str, str] = MappingProxyType({
    "char": "char", "signed char": "int8", "unsigned char": "uint8",
    "short": "int16", "short int": "int16", "signed short": "int16",
    "unsigned short": "uint16", "unsigned short int": "uint16",
    "int": "int32", "signed": "int32", "signed int": "int32",
    "unsigned": "uint32", "unsigned int": "uint32",
    "long": "int64", "long int": "int64", "long long": "int64", "long long int": "int64",
    "signed long": "int64", "signed long long": "int64",
    "unsigned long": "uint64", "unsigned long int": "uint64", "unsigned long long": "uint64",
    "unsigned long long int": "uint64",
    "bool": "bool", "_Bool": "bool", "void": "void", "float": "float", "double": "double",
    "size_t": "uint64", "ssize_t": "int64", "uintptr_t": "uint64", "intptr_t": "int64",
    "pid_t": "int32",
    **{f"{sign}{bits}{suffix}": f"{sign}{bits}"
       for bits in (8, 16, 32, 64) for sign in ("int", "uint") for suffix in ("", "_t")},
})

# The single words spellings are made of (highlighting, completion, the grammar's terminals).
TYPE_WORDS: tuple[str, ...] = tuple(sorted({w for s in SPELLINGS for w in s.split()}))

"""DWARF types -> the language's type model (uplang.plan.TypeLayout / ast.TypeRef).

Typedefs and cv-qualifiers dissolve into what they name; base types become uprobe's scalar
names (int8..uint64, char, bool); structs, unions and enums keep their C names
('struct req'), C++ ones their qualified names ('struct ns::K'), anonymous ones a name made
from their DIE offset. Anonymous members (C11) are flattened into the enclosing aggregate,
as C lets code reach them. Floating-point values are carried as their raw bits (bpftrace has
no floating point either). Arrays of arrays flatten into one array of the innermost element.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from elftools.dwarf.die import DIE

from runtime.dwarf.dies import name_of as _name
from runtime.dwarf.dies import qualified_name
from runtime.dwarf.dies import type_of as _type
from uplang import ast
from uplang.plan import MemberLayout, TypeLayout

if TYPE_CHECKING:
    from runtime.dwarf.info import DebugInfo

_SKIP_TAGS = ("DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type",
              "DW_TAG_restrict_type", "DW_TAG_atomic_type", "DW_TAG_immutable_type")
_POINTER_TAGS = ("DW_TAG_pointer_type", "DW_TAG_reference_type",
                 "DW_TAG_rvalue_reference_type", "DW_TAG_ptr_to_member_type")
_KIND = {"DW_TAG_structure_type": "struct", "DW_TAG_class_type": "struct",
         "DW_TAG_union_type": "union", "DW_TAG_enumeration_type": "enum"}
_ATE_BOOLEAN, _ATE_FLOAT, _ATE_SIGNED, _ATE_SIGNED_CHAR = 2, 4, 5, 6
_MAX_DEPTH = 64


def scalar_name(encoding: int, size: int, name: str) -> str:
    if encoding == _ATE_BOOLEAN:
        return "bool"
    if encoding in (_ATE_SIGNED, _ATE_SIGNED_CHAR) and name == "char":
        return "char"
    bits = min(max(size, 1), 8) * 8
    signed = encoding in (_ATE_SIGNED, _ATE_SIGNED_CHAR)
    return f"{'' if signed else 'u'}int{bits}"


class TypeBuilder:
    """Converts and caches the types of one DebugInfo."""

    def __init__(self, info: DebugInfo) -> None:
        self.info = info
        self._layouts: dict[str, TypeLayout] = {}
        self._names: dict[int, str] = {}  # DIE offset -> aggregate name

    # -- references -------------------------------------------------------------------

    def strip(self, die: DIE | None) -> DIE | None:
        """Through typedefs and qualifiers to the type that decides the representation."""
        for _ in range(_MAX_DEPTH):
            if die is None or die.tag not in _SKIP_TAGS:
                return die
            die = _type(die)
        return die

    def ref(self, die: DIE | None) -> tuple[ast.TypeRef, int | None]:
        """(TypeRef, array length or None) for a DIE; None means void."""
        pointer = 0
        count: int | None = None
        for _ in range(_MAX_DEPTH):
            die = self.strip(die)
            if die is None:
                return ast.TypeRef("void", pointer), count
            tag = die.tag
            if tag in _POINTER_TAGS:
                pointer += 1
                die = _type(die)
                continue
            if tag == "DW_TAG_array_type":
                n = self.array_count(die)
                if pointer:  # a pointer to an array: a pointer to its first element
                    die = _type(die)
                    continue
                count = n if count is None else count * n
                die = _type(die)
                continue
            if tag == "DW_TAG_base_type":
                enc = die.attributes.get("DW_AT_encoding")
                size = die.attributes.get("DW_AT_byte_size")
                name = scalar_name(enc.value if enc else _ATE_SIGNED,
                                   size.value if size else 8, _name(die))
                return ast.TypeRef(name, pointer), count
            if tag in _KIND:
                return ast.TypeRef(self.aggregate_name(die), pointer), count
            # Functions, nullptr_t, anything else: only meaningful behind a pointer.
            return ast.TypeRef("void" if pointer else "uint64", pointer), count
        return ast.TypeRef("uint64"), count

    def array_count(self, die: DIE) -> int:
        count = 1
        for sub in die.iter_children():
            if sub.tag != "DW_TAG_subrange_type":
                continue
            if "DW_AT_count" in sub.attributes:
                n = sub.attributes["DW_AT_count"].value
            elif "DW_AT_upper_bound" in sub.attributes:
                n = sub.attributes["DW_AT_upper_bound"].value + 1
            else:
                n = 0  # a flexible array member
            count *= n if isinstance(n, int) else 0
        return count

    def aggregate_name(self, die: DIE) -> str:
        name = self._names.get(die.offset)
        if name is not None:
            return name
        kind = _KIND[str(die.tag)]
        plain = _name(die)
        if plain:
            name = f"{kind} {qualified_name(die)}"
        else:
            name = f"{kind} (anonymous {die.offset:#x})"
        self._names[die.offset] = name
        if "DW_AT_declaration" not in die.attributes:
            self.info.register_name(name, die)
        return name

    # -- sizes ------------------------------------------------------------------------

    def byte_size(self, die: DIE | None) -> int:
        die = self.strip(die)
        if die is None:
            return 0
        if die.tag in _POINTER_TAGS:
            return 8
        if die.tag == "DW_TAG_array_type":
            return self.array_count(die) * self.byte_size(_type(die))
        size = die.attributes.get("DW_AT_byte_size")
        if size is not None:
            return size.value
        if die.tag in _KIND and "DW_AT_declaration" in die.attributes:
            full = self.info.type_die(self.aggregate_name(die))
            if full is not None and full.offset != die.offset:
                return self.byte_size(full)
        return 0

    def arg_class(self, die: DIE | None) -> str:
        """How the SysV ABI passes a value of this type: 'int' (one integer register or
        stack word), 'float' (an SSE register) or 'memory' (a struct/union by value)."""
        die = self.strip(die)
        if die is None:
            return "int"
        if die.tag == "DW_TAG_base_type":
            enc = die.attributes.get("DW_AT_encoding")
            return "float" if enc is not None and enc.value == _ATE_FLOAT else "int"
        if die.tag in ("DW_TAG_structure_type", "DW_TAG_class_type", "DW_TAG_union_type"):
            return "memory"
        return "int"

    # -- layouts ----------------------------------------------------------------------

    def layout(self, name: str) -> TypeLayout | None:
        """The layout of 'struct Foo' etc., building it (and what it holds by value)."""
        got = self._layouts.get(name)
        if got is not None:
            return got
        die = self.info.type_die(name)
        if die is None:
            return None
        return self.layout_of(die, name)

    def layout_of(self, die: DIE, name: str) -> TypeLayout:
        kind = _KIND[str(die.tag)]
        size = self.byte_size(die)
        if kind == "enum":
            enumerators = tuple(
                (_name(c), int(c.attributes["DW_AT_const_value"].value))
                for c in die.iter_children()
                if c.tag == "DW_TAG_enumerator" and "DW_AT_const_value" in c.attributes
            )
            underlying = self.ref(_type(die))[0] if _type(die) is not None else None
            signed = underlying is None or not underlying.name.startswith("u")
            if any(v < 0 for _, v in enumerators):
                signed = True
            lay = TypeLayout("enum", _bare(name), size or 4, size or 4,
                             enumerators=enumerators, signed=signed)
            self._layouts[name] = lay
            return lay
        # Placeholder first: a struct may (through a pointer) name itself.
        self._layouts[name] = TypeLayout(kind, _bare(name), size, min(size, 8) or 1)
        members = tuple(self._members(die, 0))
        lay = TypeLayout(kind, _bare(name), size, min(size, 8) or 1, members)
        self._layouts[name] = lay
        return lay

    def _members(self, die: DIE, base: int) -> list[MemberLayout]:
        out: list[MemberLayout] = []
        for child in die.iter_children():
            if child.tag != "DW_TAG_member" or "DW_AT_external" in child.attributes:
                continue  # C++ static members are not in the object
            mtype = _type(child)
            offset, bit_size, bit_offset = self._member_position(child)
            stripped = self.strip(mtype)
            name = _name(child)
            if not name and stripped is not None and stripped.tag in _KIND:
                # An anonymous struct/union member: its members belong to the parent.
                out.extend(self._members(stripped, base + offset))
                continue
            ref, count = self.ref(mtype)
            self._need(ref, count)
            size = self.byte_size(mtype)
            if bit_size:
                size = (bit_offset + bit_size + 7) // 8
            out.append(MemberLayout(name, base + offset, size, ref, count, bit_size, bit_offset))
        return out

    def _need(self, ref: ast.TypeRef, count: int | None) -> None:
        """Aggregates held by value are laid out now, so a struct value can be printed."""
        if ref.pointer or not ref.name.startswith(("struct ", "union ", "enum ")):
            return
        if ref.name not in self._layouts:
            self.layout(ref.name)

    def _member_position(self, die: DIE) -> tuple[int, int, int]:
        """(byte offset, bit size, bit offset from that byte) of a member."""
        loc = die.attributes.get("DW_AT_data_member_location")
        offset = 0
        if loc is not None:
            if isinstance(loc.value, int):
                offset = loc.value
            elif isinstance(loc.value, list) and len(loc.value) >= 2 and loc.value[0] == 0x23:
                offset = _uleb(loc.value[1:])  # DW_OP_plus_uconst N (DWARF 2)
        bits = die.attributes.get("DW_AT_bit_size")
        if bits is None:
            return offset, 0, 0
        bit_size = bits.value
        if "DW_AT_data_bit_offset" in die.attributes:
            total = die.attributes["DW_AT_data_bit_offset"].value
        else:
            # DWARF 2/3: bit_offset counts from the most significant bit of the storage unit.
            storage = die.attributes.get("DW_AT_byte_size")
            unit = storage.value if storage is not None else self.byte_size(_type(die))
            old = die.attributes.get("DW_AT_bit_offset")
            total = offset * 8 + unit * 8 - (old.value if old else 0) - bit_size
        return total // 8, bit_size, total % 8

    # -- spellings for listings -------------------------------------------------------

    def spelling(self, die: DIE | None, depth: int = 0) -> str:
        """The type as C (and bpftrace -lv) spells it: `struct req*`, `const char*`."""
        if die is None:
            return "void"
        if depth > _MAX_DEPTH:
            return "..."
        tag = die.tag
        inner = _type(die)
        if tag == "DW_TAG_typedef" or tag == "DW_TAG_base_type":
            return _name(die)
        if tag in _POINTER_TAGS:
            mark = "&" if tag == "DW_TAG_reference_type" else (
                "&&" if tag == "DW_TAG_rvalue_reference_type" else "*")
            return self.spelling(inner, depth + 1) + mark
        if tag == "DW_TAG_const_type":
            if inner is not None and inner.tag in _POINTER_TAGS:
                return self.spelling(inner, depth + 1) + " const"
            return "const " + self.spelling(inner, depth + 1)
        if tag == "DW_TAG_volatile_type":
            return "volatile " + self.spelling(inner, depth + 1)
        if tag in ("DW_TAG_restrict_type", "DW_TAG_atomic_type"):
            return self.spelling(inner, depth + 1)
        if tag == "DW_TAG_array_type":
            return f"{self.spelling(inner, depth + 1)}[{self.array_count(die)}]"
        if tag in _KIND:
            return self.aggregate_name(die)
        if tag == "DW_TAG_subroutine_type":
            return f"{self.spelling(inner, depth + 1)} (*)()"
        return _name(die) or "void"


def _bare(name: str) -> str:
    """TypeLayout names are bare ('req'), as for in-script types; keys say 'struct req'."""
    return name.split(" ", 1)[1]


def _uleb(data: list[int]) -> int:
    value = shift = 0
    for b in data:
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return value

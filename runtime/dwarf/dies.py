"""Small accessors over pyelftools DIEs shared by the DWARF modules."""

from __future__ import annotations

from elftools.dwarf.die import DIE

SCOPE_TAGS = ("DW_TAG_namespace", "DW_TAG_structure_type", "DW_TAG_class_type")


def name_of(die: DIE) -> str:
    attr = die.attributes.get("DW_AT_name")
    if attr is None:
        return ""
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def type_of(die: DIE) -> DIE | None:
    if "DW_AT_type" not in die.attributes:
        return None
    return die.get_DIE_from_attribute("DW_AT_type")


def qualified_name(die: DIE) -> str:
    """`ns::K::name` for C++ (enclosing namespaces and classes), plain name for C."""
    parts = [name_of(die)]
    parent = die.get_parent()
    while parent is not None and parent.tag in SCOPE_TAGS:
        parts.append(name_of(parent) or "(anonymous)")
        parent = parent.get_parent()
    return "::".join(reversed(parts))

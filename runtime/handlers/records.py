"""Struct, union and array values read from the target in one read and decoded here.

A struct value (`print(*p)`, `@[p->in] = count()`, `print(args)`) is captured at the hit as
bytes and turned into runtime.output Record/CArray values, members as bpftrace prints them:
integers, pointers as 0x..., char arrays as strings, nested records, bitfields.
"""

from __future__ import annotations

from runtime.handlers.ctypes_ import INT_TYPES
from runtime.output.values import CArray, Pointer, Record
from runtime.output.valuetext import cstr_text
from uplang.plan import MemberLayout, TypeLayout


def decode_record(data: bytes, layout: TypeLayout, layouts: dict[str, TypeLayout]) -> Record:
    return Record(tuple((m.name, decode_member(data, m, layouts)) for m in layout.members))


def decode_member(data: bytes, m: MemberLayout, layouts: dict[str, TypeLayout]) -> object:
    if m.bit_size:
        raw = int.from_bytes(data[m.offset:m.offset + m.size], "little") >> m.bit_offset
        raw &= (1 << m.bit_size) - 1
        if _signed(m.type.name, layouts) and raw >> (m.bit_size - 1):
            raw -= 1 << m.bit_size
        return raw
    if m.array_len is not None:
        if m.type.name == "char" and not m.type.pointer:
            return cstr_text(data[m.offset:m.offset + m.size])
        n = m.array_len
        width = m.size // n if n else 0
        return CArray(tuple(decode_scalar(data, m.offset + i * width, m.type.name,
                                          m.type.pointer, width, layouts) for i in range(n)))
    return decode_scalar(data, m.offset, m.type.name, m.type.pointer, m.size, layouts)


def decode_scalar(data: bytes, off: int, name: str, pointer: int, size: int,
                  layouts: dict[str, TypeLayout]) -> object:
    if pointer:
        return Pointer(int.from_bytes(data[off:off + 8], "little"))
    lay = layouts.get(bare_name(name))
    if lay is not None and lay.kind in ("struct", "union"):
        return decode_record(data[off:off + lay.size], lay, layouts)
    return int.from_bytes(data[off:off + size], "little", signed=_signed(name, layouts))


def _signed(name: str, layouts: dict[str, TypeLayout]) -> bool:
    if name.startswith("enum "):
        lay = layouts.get(bare_name(name))
        return lay.signed if lay is not None else True
    return INT_TYPES.get(name, (8, True))[1]


def bare_name(name: str) -> str:
    return name.split(" ", 1)[1] if name.startswith(("struct ", "union ", "enum ")) else name


def decode_array(data: bytes, elem: MemberLayout, count: int,
                 layouts: dict[str, TypeLayout]) -> CArray:
    """An array value whose element is described like a member at offset 0."""
    width = elem.size
    return CArray(tuple(decode_scalar(data, i * width, elem.type.name, elem.type.pointer, width,
                                      layouts) for i in range(count)))

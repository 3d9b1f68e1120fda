"""The DWARF expression subset that call-frame rules use (DW_CFA_def_cfa_expression,
DW_CFA_expression, DW_CFA_val_expression): register-relative arithmetic, comparisons,
dereferences. PLT entries and hand-written signal-frame CFI are the usual users."""

from __future__ import annotations

from collections.abc import Callable

MASK64 = 0xFFFF_FFFF_FFFF_FFFF


class ExprError(Exception):
    """An expression that cannot be evaluated here (unknown op, missing register)."""


def _leb(code: bytes, i: int, signed: bool) -> tuple[int, int]:
    """A LEB128 number at code[i]: (value, index after it)."""
    value = shift = 0
    while True:
        b = code[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if signed and b & 0x40:
                value -= 1 << shift
            return value, i


def _uleb(code: bytes, i: int) -> tuple[int, int]:
    return _leb(code, i, False)


def _sleb(code: bytes, i: int) -> tuple[int, int]:
    return _leb(code, i, True)


def _signed(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


_CONST = {0x08: (1, False), 0x09: (1, True), 0x0A: (2, False), 0x0B: (2, True),
          0x0C: (4, False), 0x0D: (4, True), 0x0E: (8, False), 0x0F: (8, True)}
_BINARY: dict[int, Callable[[int, int], int]] = {
    0x1A: lambda a, b: a & b, 0x1B: lambda a, b: _signed(a) // _signed(b) if b else 0,
    0x1C: lambda a, b: a - b, 0x1D: lambda a, b: a % b if b else 0,
    0x1E: lambda a, b: a * b, 0x21: lambda a, b: a | b, 0x22: lambda a, b: a + b,
    0x24: lambda a, b: a << b, 0x25: lambda a, b: a >> b,
    0x26: lambda a, b: _signed(a) >> b, 0x27: lambda a, b: a ^ b,
    0x29: lambda a, b: int(a == b), 0x2A: lambda a, b: int(_signed(a) >= _signed(b)),
    0x2B: lambda a, b: int(_signed(a) > _signed(b)), 0x2C: lambda a, b: int(_signed(a) <= _signed(b)),
    0x2D: lambda a, b: int(_signed(a) < _signed(b)), 0x2E: lambda a, b: int(a != b),
}


def evaluate(code: bytes, regs: dict[int, int | None], read_u64: Callable[[int], int],
             push: int | None = None) -> int:
    """The value on top of the stack after running `code`; `push` is put on the stack
    first (the CFA, for DW_CFA_expression rules)."""
    stack: list[int] = [] if push is None else [push]

    def reg(n: int) -> int:
        value = regs.get(n)
        if value is None:
            raise ExprError(f"register {n} unknown")
        return value

    i = 0
    try:
        while i < len(code):
            op = code[i]
            i += 1
            if 0x30 <= op <= 0x4F:
                stack.append(op - 0x30)
            elif 0x70 <= op <= 0x8F:
                off, i = _sleb(code, i)
                stack.append((reg(op - 0x70) + off) & MASK64)
            elif op in _CONST:
                size, signed = _CONST[op]
                stack.append(int.from_bytes(code[i:i + size], "little", signed=signed) & MASK64)
                i += size
            elif op == 0x10:
                v, i = _uleb(code, i)
                stack.append(v)
            elif op == 0x11:
                v, i = _sleb(code, i)
                stack.append(v & MASK64)
            elif op == 0x92:  # bregx
                r, i = _uleb(code, i)
                off, i = _sleb(code, i)
                stack.append((reg(r) + off) & MASK64)
            elif op == 0x06:
                stack.append(read_u64(stack.pop()))
            elif op == 0x12:
                stack.append(stack[-1])
            elif op == 0x13:
                stack.pop()
            elif op == 0x14:
                stack.append(stack[-2])
            elif op == 0x15:
                stack.append(stack[-1 - code[i]])
                i += 1
            elif op == 0x16:
                stack[-1], stack[-2] = stack[-2], stack[-1]
            elif op == 0x17:  # rot
                stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]
            elif op == 0x19:
                stack.append(abs(_signed(stack.pop())) & MASK64)
            elif op == 0x1F:
                stack.append(-stack.pop() & MASK64)
            elif op == 0x20:
                stack.append(~stack.pop() & MASK64)
            elif op == 0x23:
                v, i = _uleb(code, i)
                stack.append((stack.pop() + v) & MASK64)
            elif op in _BINARY:
                b = stack.pop()
                a = stack.pop()
                stack.append(_BINARY[op](a, b) & MASK64)
            elif op == 0x2F:  # skip
                i += 2 + int.from_bytes(code[i:i + 2], "little", signed=True)
            elif op == 0x28:  # bra
                off = int.from_bytes(code[i:i + 2], "little", signed=True)
                i += 2
                if stack.pop():
                    i += off
            elif op == 0x96:  # nop
                pass
            else:
                raise ExprError(f"DWARF op {op:#x} not supported in CFI")
        return stack[-1]
    except IndexError:
        raise ExprError("malformed DWARF expression") from None

"""printf / system / cat formatting with bpftrace's conversions and C's semantics.

bpftrace (0.17) hands every integer argument to snprintf as a 64-bit value, so the
length modifier decides how much of it is printed: `%d` shows the low 32 bits as signed,
`%hhx` the low byte, `%ld`/`%lld`/`%jd`/`%zd`/`%td` all 64 bits. We do the same, including
the flags `-`, `0`, `+`, space and `#`, width and precision, and `%%`.

Conversions: d i u o x X c p (integers, any length hh h l ll j z t), s (strings, symbols,
stacks, timestamps; tuples, structs and arrays too, as bpftrace >= 0.21 allows), r rx rh
(buf() values: hex escapes). `%i` is accepted as C does. Floating-point conversions are
refused: the language has no floating-point values. The checker's messages use bpftrace
0.17's wording ("printf: %d specifier expects a value of type integer (string supplied)").

    fmt = PrintfFormat.parse("%-8s %5d\\n")      # PrintfError on a malformed format
    fmt.check(("str", "int"))                  # -> [] or ["printf: ..."] (front end)
    fmt.format(("bash", 42))                   # -> "bash        42\\n"
    check_printf(fmt_text, kinds); format_printf(fmt_text, args)   # one-shot helpers

Argument kinds for check(): 'int' (also 'integer', 'bool', 'pointer', 'ptr', 'uaddr'),
'str' ('string', 'usym', 'stack', 'ustack', 'probe', 'func', 'comm', 'timestamp',
'username', 'ksym', 'kstack', 'strerror', 'cgroup_path', 'macaddr'), 'buf' ('buffer'),
'tuple', 'record', 'array'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from runtime.output.errors import PrintfError
from runtime.output.values import Buf
from runtime.output.valuetext import hex_format_buffer, text_bytes, value_text

_SPEC = re.compile(
    r"%(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<prec>\d*))?"
    r"(?P<length>hh|h|ll|l|j|z|t|L)?(?P<conv>rx|rh|r|[A-Za-z%])"
)
_LENGTH_BITS = MappingProxyType(
    {"": 32, "hh": 8, "h": 16, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64}
)
INT_CONVS = frozenset("diuoxXcp")
FLOAT_CONVS = frozenset("eEfFgGaA")
BUF_CONVS = frozenset({"r", "rx", "rh"})

_KIND_CLASS = MappingProxyType({
    **dict.fromkeys(("int", "integer", "bool", "pointer", "ptr", "uaddr"), "integer"),
    **dict.fromkeys(
        ("str", "string", "usym", "stack", "ustack", "probe", "func", "comm", "timestamp",
         "username", "ksym", "kstack", "strerror", "cgroup_path", "macaddr"),
        "string",
    ),
    **dict.fromkeys(("buf", "buffer"), "buffer"),
    "tuple": "tuple",
    "record": "record",
    "array": "array",
})


@dataclass(frozen=True)
class Spec:
    """One conversion: `%[flags][width][.precision][length]conv`."""

    text: str
    flags: str
    width: int
    precision: int | None
    length: str
    conv: str

    @property
    def expects(self) -> str:
        if self.conv in INT_CONVS:
            return "integer"
        if self.conv in BUF_CONVS:
            return "buffer"
        return "string"

    def accepts(self, kind_class: str) -> bool:
        if self.conv == "s":
            return kind_class in ("string", "tuple", "record", "array")
        return kind_class == self.expects


def _parse(fmt: str) -> tuple[tuple[str | Spec, ...], tuple[Spec, ...]]:
    parts: list[str | Spec] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        j = fmt.find("%", i)
        if j < 0:
            literal.append(fmt[i:])
            break
        literal.append(fmt[i:j])
        m = _SPEC.match(fmt, j)
        if m is None:
            raise PrintfError(f"printf: Unknown format string token: {fmt[j:j + 2]}")
        conv, length = m["conv"], m["length"] or ""
        if conv == "%":
            literal.append("%")
        elif conv in FLOAT_CONVS:
            raise PrintfError(
                f"printf: {m.group(0)}: floating-point conversions are not supported "
                "(uprobe values are integers)"
            )
        elif (
            (conv in INT_CONVS and length in _LENGTH_BITS)
            or (conv in ("s", *BUF_CONVS) and not length)
        ):
            if literal:
                parts.append("".join(literal))
                literal = []
            prec = m["prec"]
            parts.append(
                Spec(m.group(0), m["flags"], int(m["width"] or 0),
                     None if prec is None else int(prec or 0), length, conv)
            )
        else:
            raise PrintfError(f"printf: Unknown format string token: %{length}{conv}")
        i = m.end()
    if literal:
        parts.append("".join(literal))
    return tuple(parts), tuple(p for p in parts if isinstance(p, Spec))


@dataclass(frozen=True)
class PrintfFormat:
    """A parsed format string; parse once per call site, format on every hit."""

    fmt: str
    parts: tuple[str | Spec, ...]
    specs: tuple[Spec, ...]

    @classmethod
    def parse(cls, fmt: str) -> PrintfFormat:
        parts, specs = _parse(fmt)
        return cls(fmt, parts, specs)

    def check(self, arg_kinds: tuple[str, ...] | list[str]) -> list[str]:
        """Errors (bpftrace's wording) for arguments of these kinds; [] when fine."""
        n, want = len(arg_kinds), len(self.specs)
        counts = f"({n} supplied, {want} expected)"
        if n < want:
            return [f"printf: Not enough arguments for format string {counts}"]
        if n > want:
            return [f"printf: Too many arguments for format string {counts}"]
        errors: list[str] = []
        for spec, kind in zip(self.specs, arg_kinds, strict=True):
            cls_ = _KIND_CLASS.get(kind)
            if cls_ is None:
                raise ValueError(f"unknown argument kind {kind!r}")
            if not spec.accepts(cls_):
                conv = spec.length + spec.conv
                errors.append(
                    f"printf: %{conv} specifier expects a value of type {spec.expects} "
                    f"({cls_} supplied)"
                )
        return errors

    def format(self, args: tuple[object, ...] | list[object]) -> str:
        if len(args) != len(self.specs):
            raise PrintfError(
                f"printf: {len(args)} arguments supplied, {len(self.specs)} expected"
            )
        out: list[str] = []
        it = iter(args)
        for part in self.parts:
            out.append(part if isinstance(part, str) else format_one(part, next(it)))
        return "".join(out)


def check_printf(fmt: str, arg_kinds: tuple[str, ...] | list[str]) -> list[str]:
    """Front-end check of a format string against its argument kinds."""
    try:
        return PrintfFormat.parse(fmt).check(arg_kinds)
    except PrintfError as e:
        return [e.message]


def format_printf(fmt: str, args: tuple[object, ...] | list[object]) -> str:
    return PrintfFormat.parse(fmt).format(args)


# ----------------------------------------------------------------------------- conversions


def _pad(body: str, spec: Spec) -> str:
    """Width counts bytes, as in C."""
    short = spec.width - len(text_bytes(body))
    if short <= 0:
        return body
    return body + " " * short if "-" in spec.flags else " " * short + body


def format_one(spec: Spec, value: object) -> str:
    if spec.conv in INT_CONVS:
        return _format_int(spec, value)
    if spec.conv in BUF_CONVS:
        if isinstance(value, Buf):
            data = value.data
        elif isinstance(value, bytes):
            data = value
        else:
            data = text_bytes(value_text(value))
        keep_ascii = spec.conv == "r"
        escape = spec.conv != "rh"
        return _pad(hex_format_buffer(data, keep_ascii, escape), spec)
    raw = text_bytes(value_text(value))
    if spec.precision is not None:
        raw = raw[: spec.precision]
    return _pad(raw.decode("utf-8", "surrogateescape"), spec)


def _format_int(spec: Spec, value: object) -> str:
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise PrintfError(
            f"printf: {spec.text} needs an integer, got {type(value).__name__}"
        )
    bits = 64 if spec.conv == "p" else _LENGTH_BITS[spec.length]
    raw = value & ((1 << bits) - 1)
    if spec.conv == "c":
        return _pad(bytes([raw & 0xFF]).decode("utf-8", "surrogateescape"), spec)
    if spec.conv == "p" and raw == 0:
        return _pad("(nil)", spec)  # glibc's %p of a null pointer
    signed = spec.conv in "di"
    v = raw - (1 << bits) if signed and raw >> (bits - 1) else raw
    mag = abs(v)
    conv = "x" if spec.conv == "p" else spec.conv
    if conv in "diu":
        digits = str(mag)
    elif conv == "o":
        digits = f"{mag:o}"
    elif conv == "x":
        digits = f"{mag:x}"
    else:
        digits = f"{mag:X}"
    if spec.precision is not None:
        digits = "" if spec.precision == 0 and mag == 0 else digits.zfill(spec.precision)
    prefix = ""
    alt = "#" in spec.flags or spec.conv == "p"
    if alt and conv == "o" and not digits.startswith("0"):
        digits = "0" + digits
    elif alt and conv in "xX" and mag != 0:
        prefix = "0X" if conv == "X" else "0x"
    sign = ""
    # glibc's %p honours the sign flags although a pointer is never negative.
    sign_flags = signed or spec.conv == "p"
    if v < 0:
        sign = "-"
    elif sign_flags and "+" in spec.flags:
        sign = "+"
    elif sign_flags and " " in spec.flags:
        sign = " "
    head = sign + prefix
    if (
        "0" in spec.flags and "-" not in spec.flags and spec.precision is None
        and len(head) + len(digits) < spec.width
    ):
        digits = digits.rjust(spec.width - len(head), "0")
    return _pad(head + digits, spec)

"""printf formatting: compared with glibc's snprintf fed as bpftrace feeds it, plus the
front-end checker's messages and buf() conversions."""

from __future__ import annotations

import itertools
import subprocess

import pytest

from runtime.output.errors import PrintfError
from runtime.output.printf import PrintfFormat, check_printf, format_printf
from runtime.output.values import Buf, Stack, Usym

INT_VALUES = [0, 1, -1, 7, 42, -42, 255, 256, 65535, 65536, 2**31 - 1, -(2**31),
              2**32 + 5, 0x12345678ABCDEF, 2**63 - 1, -(2**63)]
INT_FORMATS = [
    "%d", "%i", "%u", "%x", "%X", "%o", "%c|", "%p",
    "%hhd", "%hhu", "%hhx", "%hd", "%hu", "%hx", "%ld", "%lu", "%lx", "%lld", "%llu",
    "%llx", "%jd", "%jx", "%zd", "%zu", "%td", "%lX", "%lo",
    "%5d", "%-5d|", "%05d", "%+d", "% d", "%+5d", "%-+6d|", "% 05d", "%#x", "%#X",
    "%#o", "%#lo", "%#08x", "%.3d", "%.0d", "%8.3d", "%-8.3d|", "%08.3d", "%.5x",
    "%#.5x", "%.0x", "%#.0o", "%20lld", "%020llu", "%-20lx|", "%18p", "%-18p|", "%+lld",
    "%3c|", "%-3c|", "%#lx",
]
STR_VALUES = ["", "a", "hello", "hello world, this is long"]
STR_FORMATS = ["%s", "%10s|", "%-10s|", "%.3s|", "%10.2s|", "%-6.4s|", "%.0s|", "%1s|"]


@pytest.fixture(scope="module")
def snprintf(builder):
    exe = builder.build("printf_truth.c", "-w")

    def run(cases: list[tuple[str, str, str]]) -> list[str]:
        text = "".join(f"{k}\t{f}\t{a}\n" for k, f, a in cases)
        out = subprocess.run([str(exe)], input=text.encode(), capture_output=True,
                             timeout=20, check=True).stdout
        lines = out.decode("latin-1").split("\n")[: len(cases)]
        return [line[1:-1] for line in lines]

    return run


@pytest.mark.timeout(60)
def test_integer_conversions_match_glibc(snprintf):
    cases = [("i", f, str(v & (2**64 - 1))) for f in INT_FORMATS for v in INT_VALUES]
    truth = snprintf(cases)
    ours = []
    for (_, f, _), v in zip(cases, [v for _ in INT_FORMATS for v in INT_VALUES], strict=True):
        text = format_printf(f, (v,))
        ours.append(text.encode("utf-8", "surrogateescape").decode("latin-1"))
    mismatches = [(c[1], c[2], t, o) for c, t, o in zip(cases, truth, ours, strict=True)
                  if t != o and "\0" not in o]
    assert mismatches == []


@pytest.mark.timeout(120)
def test_flag_width_precision_length_matrix_matches_glibc(snprintf):
    flags = ["", "-", "0", "+", " ", "#", "-+", "0#", "+0", " 0", "-#", "- ", "+ "]
    widths = ["", "1", "6", "22"]
    precisions = ["", ".", ".0", ".3", ".25"]
    lengths = ["", "hh", "h", "l", "ll", "j", "z", "t"]
    values = [0, 1, -1, 255, -129, 65536, 2**40 + 7, -(2**63)]
    cases = [
        (f"%{f}{w}{p}{n}{c}", v)
        for f, w, p, n, c in itertools.product(flags, widths, precisions, lengths, "diouxXp")
        for v in values
    ]
    truth = snprintf([("i", f, str(v & (2**64 - 1))) for f, v in cases])
    mismatches = [
        (f, v, t, o)
        for (f, v), t in zip(cases, truth, strict=True)
        if (o := format_printf(f, (v,))) != t
    ]
    assert mismatches[:5] == []


@pytest.mark.timeout(60)
def test_string_conversions_match_glibc(snprintf):
    cases = [("s", f, s) for f in STR_FORMATS for s in STR_VALUES]
    truth = snprintf(cases)
    ours = [format_printf(f, (s,)) for _, f, s in cases]
    assert ours == truth


def test_bpftrace_runtime_expectations():
    # tests/runtime/call of bpftrace: printf_length_modifiers, printf_char, printf_argument
    assert format_printf("%hhx %hx %x %jx\n", (0x12345678ABCDEF,) * 4) == (
        "ef cdef 78abcdef 12345678abcdef\n"
    )
    assert format_printf("%c%c%c%c\n", (0x41, 0x42, 0x43, 0x44)) == "ABCD\n"
    assert format_printf("value: %dms100\n", (100,)) == "value: 100ms100\n"
    assert format_printf(
        "%dst: %sa; %dnd: %sb;; %drd: %sc;;; %dth: %sd;;;;\n",
        (1, "a", 2, "ab", 3, "abc", 4, "abcd"),
    ) == "1st: aa; 2nd: abb;; 3rd: abcc;;; 4th: abcdd;;;;\n"


def test_percent_literal_and_no_args():
    assert format_printf("100%% done\n", ()) == "100% done\n"
    assert format_printf("%d%%", (5,)) == "5%"


def test_strings_from_target_bytes_stop_at_nul_and_keep_raw_bytes():
    assert format_printf("[%s]", (b"abc\0def",)) == "[abc]"
    raw = format_printf("%s", (b"\xff\xfeok",))
    assert raw.encode("utf-8", "surrogateescape") == b"\xff\xfeok"


def test_buffers_r_rx_rh():
    # tests/runtime/call: buf_no_ascii (%rx), buf_no_ascii_no_escaping (%rh)
    b = Buf(b"Hello\0")
    assert format_printf("%rx", (b,)) == r"\x48\x65\x6c\x6c\x6f\x00"
    assert format_printf("%rh", (b,)) == "48 65 6c 6c 6f 00"
    assert format_printf("%r", (Buf(b"\x09\x08ok\x7f\x80 ~"),)) == r"\x09\x08ok\x7f\x80 ~"


def test_symbols_stacks_and_tuples_print_with_s():
    assert format_printf("%s", (Usym(0x401000, "main", 4),)) == "main"
    assert format_printf("%s", (Usym(0x401000),)) == "0x401000"
    st = Stack(())
    assert format_printf("[%s]", (st,)) == "[\n]"
    assert format_printf("%s", ((1, "abc", (2, "d")),)) == "(1, abc, (2, d))"


def test_int_conversion_of_a_string_is_an_error():
    with pytest.raises(PrintfError, match="needs an integer"):
        format_printf("%d", ("abc",))


def test_argument_count_is_checked_at_format_time():
    with pytest.raises(PrintfError):
        format_printf("%d %d", (1,))


def test_checker_messages():
    assert check_printf("%d %s\n", ("int", "str")) == []
    assert check_printf("%lu %-8s %r", ("integer", "usym", "buf")) == []
    assert check_printf("%s", ("ustack",)) == []
    assert check_printf("%s %s %s", ("tuple", "record", "array")) == []
    assert check_printf("%d", ("str",)) == [
        "printf: %d specifier expects a value of type integer (string supplied)"
    ]
    assert check_printf("%s", ("int",)) == [
        "printf: %s specifier expects a value of type string (integer supplied)"
    ]
    assert check_printf("%lld %r", ("int", "str")) == [
        "printf: %r specifier expects a value of type buffer (string supplied)"
    ]
    assert check_printf("%d %d", ("int",)) == [
        "printf: Not enough arguments for format string (1 supplied, 2 expected)"
    ]
    assert check_printf("%d", ("int", "int")) == [
        "printf: Too many arguments for format string (2 supplied, 1 expected)"
    ]
    assert check_printf("%k", ("int",)) == ["printf: Unknown format string token: %k"]
    assert check_printf("%ls", ("str",)) == ["printf: Unknown format string token: %ls"]
    assert check_printf("oops %", ()) == ["printf: Unknown format string token: %"]
    (msg,) = check_printf("%f", ("int",))
    assert "floating-point" in msg


def test_parse_once_format_many():
    fmt = PrintfFormat.parse("%-6s|%4d\n")
    assert [fmt.format((n, v)) for n, v in (("a", 1), ("bash", -20))] == [
        "a     |   1\n",
        "bash  | -20\n",
    ]
    assert fmt.check(("str", "int")) == []


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        check_printf("%d", ("float",))

"""Text output, byte for byte against bpftrace 0.17's expected outputs and source facts."""

from __future__ import annotations

import io
import subprocess

import pytest

from runtime.maps import MapStore
from runtime.output.hist import bar_length, hist_label, lhist_label
from runtime.output.jsonl import value_json
from runtime.output.text import TextOutput, map_text, value_line
from runtime.output.values import Buf, CArray, Frame, Pointer, Record, Stack, Usym
from runtime.output.valuetext import value_text

# bpftrace tests/runtime/outputs/hist.txt (hist of -1, 2, 3, 7, 20); the example.
HIST_EXAMPLE = (
    "@: \n"
    "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
    "[0]                    0 |                                                    |\n"
    "[1]                    0 |                                                    |\n"
    "[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
    "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
    "[8, 16)                0 |                                                    |\n"
    "[16, 32)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
    "\n"
)
# bpftrace tests/runtime/outputs/lhist.txt (lhist(v, 0, 10, 2) of the same values).
LHIST_EXAMPLE = (
    "@: \n"
    "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
    "[0, 2)                 0 |                                                    |\n"
    "[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
    "[4, 6)                 0 |                                                    |\n"
    "[6, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
    "[8, 10)                0 |                                                    |\n"
    "[10, ...)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
    "\n"
)


def store_with(kind: str, values, key=(), args=None, name="") -> MapStore:
    s = MapStore()
    for v in values:
        s.aggregate(name, key, kind, v, args)
    return s


def test_hist_example_exact():
    s = store_with("hist", (-1, 2, 3, 7, 20))
    assert map_text(s.map("")) == HIST_EXAMPLE


def test_lhist_example_exact():
    s = store_with("lhist", (-1, 2, 3, 7, 20), args=(0, 10, 2))
    assert map_text(s.map("")) == LHIST_EXAMPLE


def test_hist_rows_only_from_first_to_last_nonempty_bucket():
    s = store_with("hist", (5, 5, 40), name="h")
    assert map_text(s.map("h")) == (
        "@h: \n"
        "[4, 8)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[8, 16)                0 |                                                    |\n"
        "[16, 32)               0 |                                                    |\n"
        "[32, 64)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "\n"
    )


@pytest.mark.parametrize(
    ("index", "label"),
    [
        (0, "(..., 0)"), (1, "[0]"), (2, "[1]"), (3, "[2, 4)"), (11, "[512, 1K)"),
        (12, "[1K, 2K)"), (21, "[512K, 1M)"), (22, "[1M, 2M)"), (32, "[1G, 2G)"),
        (41, "[512G, 1T)"), (42, "[1T, 2T)"), (52, "[1024T, 2048T)"),
        (64, "[4194304T, 8388608T)"),
    ],
)
def test_hist_labels_with_suffixes(index, label):
    assert hist_label(index) == label


def test_hist_of_large_values_uses_suffixes():
    s = store_with("hist", (1024, 2047, 10 * 2**30), name="big")
    text = map_text(s.map("big"))
    lines = text.splitlines()
    assert lines[1].startswith(f"{'[1K, 2K)':<16}{2:>8} |")
    assert lines[-2].startswith(f"{'[8G, 16G)':<16}{1:>8} |")
    assert lines[-1] == ""


@pytest.mark.parametrize(
    ("index", "args", "label"),
    [
        (0, (0, 4096, 1024), "(..., 0)"),
        (1, (0, 4096, 1024), "[0, 1K)"),
        (2, (0, 4096, 1024), "[1K, 2K)"),
        (5, (0, 4096, 1024), "[4K, ...)"),
        (1, (0, 2 * 2**20, 2**20), "[0, 1M)"),
        (2, (0, 2 * 2**20, 2**20), "[1M, 2M)"),
        (3, (0, 2 * 2**20, 2**20), "[2M, ...)"),
        (2, (0, 2048, 512), "[512, 1K)"),
        (3, (0, 2048, 512), "[1K, 1536)"),
        (1, (1000, 5000, 1000), "[1000, 2000)"),
        (0, (-2048, 0, 1024), "(..., -2K)"),
        (1, (-2048, 0, 1024), "[-2K, -1K)"),
        (3, (-2048, 0, 1024), "[0, ...)"),
    ],
)
def test_lhist_labels(index, args, label):
    assert lhist_label(index, *args) == label


def test_lhist_overflow_and_underflow_rows():
    s = store_with("lhist", (-5, 150, 150, 55), args=(0, 100, 10), name="l")
    lines = map_text(s.map("l")).splitlines()
    assert lines[0] == "@l: "
    assert lines[1].startswith("(..., 0)               1 |")
    assert lines[7].startswith("[50, 60)               1 |")
    assert lines[-2] == "[100, ...)             2 |" + "@" * 52 + "|"
    assert lines[-1] == ""
    assert len(lines) == 14


@pytest.fixture(scope="module")
def c_bar(builder):
    exe = builder.build("hist_bar_truth.c")

    def run(pairs: list[tuple[int, int]]) -> list[int]:
        text = "".join(f"{c} {m}\n" for c, m in pairs)
        out = subprocess.run([str(exe)], input=text.encode(), capture_output=True,
                             timeout=20, check=True).stdout
        return [int(x) for x in out.split()]

    return run


@pytest.mark.timeout(60)
def test_bar_lengths_match_c_float_arithmetic(c_bar):
    pairs = [(c, m) for m in range(1, 120) for c in range(0, m + 1)]
    pairs += [(c, m) for m in (999_983, 16_777_217, 2**31 - 1) for c in (1, 3, m // 3, m - 1, m)]
    assert [bar_length(c, m) for c, m in pairs] == c_bar(pairs)


def test_keyed_hists_sorted_by_total_blank_line_between():
    s = MapStore()
    s.aggregate("", (1,), "hist", 10)
    s.aggregate("", (2,), "hist", 20)
    s.aggregate("", (2,), "hist", 20)
    s.aggregate("", (3,), "hist", 30)
    row8 = "[8, 16)                1 |" + "@" * 52 + "|\n"
    row16_1 = "[16, 32)               1 |" + "@" * 52 + "|\n"
    row16_2 = "[16, 32)               2 |" + "@" * 52 + "|\n"
    assert map_text(s.map("")) == (
        "@[1]: \n" + row8 + "\n@[3]: \n" + row16_1 + "\n@[2]: \n" + row16_2 + "\n"
    )
    # print(@, 2): the two largest (bpftrace's print_hist_with_top_arg)
    assert map_text(s.map(""), top=2) == "@[3]: \n" + row16_1 + "\n@[2]: \n" + row16_2 + "\n"


def test_hist_div_divides_shown_counts_not_bars():
    s = store_with("hist", [3] * 10 + [9] * 5, name="h")
    assert map_text(s.map("h"), div=5) == (
        "@h: \n"
        "[2, 4)                 2 |" + "@" * 52 + "|\n"
        "[4, 8)                 0 |" + " " * 52 + "|\n"
        "[8, 16)                1 |" + "@" * 26 + " " * 26 + "|\n"
        "\n"
    )


def test_count_map_sorted_by_value_string_keys_bare():
    s = MapStore()
    for comm, n in (("sshd", 10), ("bash", 3), ("systemd", 1)):
        for _ in range(n):
            s.aggregate("", (comm,), "count")
    assert map_text(s.map("")) == "@[systemd]: 1\n@[bash]: 3\n@[sshd]: 10\n"


def test_multi_keys_and_scalar():
    s = MapStore()
    s.assign("x", (), 5)
    s.assign("m", ("bash", 2), 5)
    s.assign("m", ("bash", 1), 5)
    s.assign("m", ("a", 9), 7)
    assert map_text(s.map("x")) == "@x: 5\n"
    assert map_text(s.map("m")) == "@m[bash, 1]: 5\n@m[bash, 2]: 5\n@m[a, 9]: 7\n"


def test_sum_min_max_sort_by_signed_value():
    s = MapStore()
    for k, v in (("a", 5), ("b", -7), ("c", 0)):
        s.aggregate("s", (k,), "sum", v)
        s.aggregate("mn", (k,), "min", v)
        s.aggregate("mx", (k,), "max", v)
    for name in ("s", "mn", "mx"):
        assert map_text(s.map(name)) == f"@{name}[b]: -7\n@{name}[c]: 0\n@{name}[a]: 5\n"


def test_plain_string_and_tuple_values_sorted_by_key():
    s = MapStore()
    s.assign("who", (20,), "zed")
    s.assign("who", (3,), "amy")
    s.assign("t", ("k",), (1, "abc", (2, "x")))
    assert map_text(s.map("who")) == "@who[3]: amy\n@who[20]: zed\n"
    assert map_text(s.map("t")) == "@t[k]: (1, abc, (2, x))\n"


def test_avg_print_top_div_as_bpftrace():
    # bpftrace tests/runtime/call print_avg_map_args / print_avg_map_with_large_top
    s = MapStore()
    for k, v in (("a", 10), ("b", 20), ("c", 30), ("d", 40)):
        s.aggregate("", (k,), "avg", v)
    assert map_text(s.map(""), 2, 10) == "@[c]: 3\n@[d]: 4\n\n"
    assert map_text(s.map(""), 10, 10) == "@[a]: 1\n@[b]: 2\n@[c]: 3\n@[d]: 4\n\n"


def test_stats_line_and_sort_by_average():
    s = MapStore()
    for v in (1, 2, 3):
        s.aggregate("", (), "stats", v)
    assert map_text(s.map("")) == "@: { .count = 3, .average = 2, .total = 6 }\n\n"
    for v in (100, -50):
        s.aggregate("k", ("big",), "stats", v)
    s.aggregate("k", ("small",), "stats", -1)
    assert map_text(s.map("k")) == (
        "@k[small]: { .count = 1, .average = -1, .total = -1 }\n"
        "@k[big]: { .count = 2, .average = 25, .total = 50 }\n\n"
    )


def test_count_top_and_div():
    s = MapStore()
    for k, n in (("a", 10), ("b", 25), ("c", 7)):
        for _ in range(n):
            s.aggregate("", (k,), "count")
    assert map_text(s.map(""), top=2) == "@[a]: 10\n@[b]: 25\n"
    assert map_text(s.map(""), 0, 5) == "@[c]: 1\n@[a]: 2\n@[b]: 5\n"
    assert map_text(s.map(""), top=5) == "@[c]: 7\n@[a]: 10\n@[b]: 25\n"


def test_div_truncates_negative_sums_toward_zero():
    s = MapStore()
    s.aggregate("s", (), "sum", -7)
    assert map_text(s.map("s"), 0, 2) == "@s: -3\n"


def test_negative_integer_keys_sort_as_unsigned():
    s = MapStore()
    for k in (-1, 5, 0):
        s.assign("m", (k,), "v")
    assert map_text(s.map("m")) == "@m[0]: v\n@m[5]: v\n@m[-1]: v\n"


def test_empty_map_prints_its_terminator_only():
    s = MapStore()
    s.aggregate("c", (), "count")
    s.clear("c")
    assert map_text(s.map("c")) == "\n"


def test_ustack_keys_and_values():
    st = Stack((Frame("inner", 4, 0x401004, "/bin/p"), Frame("main", 20, 0x401100, "/bin/p"),
                Frame(None, 0, 0x7F0012345678)))
    s = MapStore()
    s.aggregate("", (st,), "count")
    assert map_text(s.map("")) == (
        "@[\n        inner+4\n        main+20\n        0x7f0012345678\n]: 1\n"
    )
    s.assign("v", (1,), st)
    s.assign("v", (2,), Stack((Frame("f", 0, 0x10),)))
    # stack text ends with a newline: bpftrace puts no separator between entries
    assert map_text(s.map("v")) == (
        "@v[1]: \n        inner+4\n        main+20\n        0x7f0012345678\n"
        "@v[2]: \n        f+0\n\n"
    )


def test_stack_modes():
    frames = (Frame("inner", 4, 0x401004, "/bin/p"), Frame(None, 0, 0xABC))
    assert value_line(Stack(frames, "perf")) == (
        "\n\t401004 inner+4 (/bin/p)\n\tabc 0xabc ([unknown])\n\n"
    )
    assert value_line(Stack(frames, "raw")) == "\n401004\nabc\n\n"


def test_usym_and_buf_values():
    s = MapStore()
    s.assign("", (), Usym(0x1))  # bpftrace tests/runtime/call usym: "@a: 0x1"
    assert map_text(s.map("")) == "@: 0x1\n"
    s.assign("f", (1,), Usym(0x401000, "main", 0))
    assert map_text(s.map("f")) == "@f[1]: main\n"
    s.aggregate("b", (Buf(b"ok_key"),), "count")  # buf_map_key: "@[ok_key]: 1"
    assert map_text(s.map("b")) == "@b[ok_key]: 1\n"
    s.aggregate("bh", (Buf(b"ok_key\0\0"), 1), "hist", 1)  # buf_map_multikey
    assert map_text(s.map("bh")).startswith("@bh[ok_key\\x00\\x00, 1]: \n[1]")


def test_print_values():
    # bpftrace print_non_map / print_non_map_tuple
    assert value_line(5) == "5\n"
    assert value_line((1, 2, "string")) == "(1, 2, string)\n"
    assert value_line(b"comm\0\0") == "comm\n"


def test_structs_and_arrays():
    # bpftrace print_non_map_struct / _array / _multi_dimensional_array
    assert value_line(Record((("m", 2), ("n", 3)))) == "{ .m = 2, .n = 3 }\n"
    assert value_line(CArray((1, 2, 3, 4))) == "[1,2,3,4]\n"
    assert value_line(CArray((CArray((5, 6)), CArray((7, 8))))) == "[[5,6],[7,8]]\n"
    s = MapStore()
    s.assign("r", (1,), Record((("a", CArray((1, 2))), ("s", "x"))))
    assert map_text(s.map("r")) == "@r[1]: { .a = [1,2], .s = x }\n"


def test_exit_dump_skips_empty_maps_and_starts_with_two_newlines():
    s = MapStore()
    s.aggregate("b", (), "count")
    s.aggregate("a", ("x",), "sum", 4)
    s.aggregate("gone", (), "count")
    s.clear("gone")
    s.aggregate("st", (), "avg", 4)
    out = io.StringIO()
    TextOutput(out).maps_at_exit(s)
    assert out.getvalue() == "\n\n@a[x]: 4\n@b: 1\n@st: 4\n\n"


def test_sink_events_and_diagnostics():
    out, diag = io.StringIO(), io.StringIO()
    o = TextOutput(out, diag)
    o.attached_probes(1)
    o.attached_probes(3)
    o.printf("hi\n")
    o.message("time", "12:00:00\n")
    o.value((1, "a"))
    o.lost_events(4)
    o.error("cannot read memory at 0x0")
    o.warning("slow")
    assert out.getvalue() == "hi\n12:00:00\n(1, a)\n"
    assert diag.getvalue() == (
        "Attached 1 probe\nAttached 3 probes\nLost 4 events\n"
        "ERROR: cannot read memory at 0x0\nWARNING: slow\n"
    )


def test_raw_target_bytes_reach_binary_and_text_files_unchanged(tmp_path):
    s = MapStore()
    s.assign("", (b"\xffname",), b"v\xfe")
    raw = io.BytesIO()
    TextOutput(raw).map(s.map(""))
    assert raw.getvalue() == b"@[\xffname]: v\xfe\n"
    path = tmp_path / "out.txt"
    with open(path, "w") as f:
        o = TextOutput(f)
        f.write("first\n")  # text written before must come out first
        o.map(s.map(""))
    assert path.read_bytes() == b"first\n@[\xffname]: v\xfe\n"


def test_pointer_values_print_as_hex() -> None:
    p = Pointer(0x7F00_1234)
    assert value_text(p) == "0x7f001234"
    assert value_text(Pointer(0)) == "0x0"
    assert value_json(p) == str(0x7F00_1234)
    assert isinstance(p + 1, int) and not isinstance(p + 1, Pointer)
    store = MapStore()
    store.assign("p", (), p)
    store.assign("n", (), p + 1)
    assert map_text(store.map("p")) == "@p: 0x7f001234\n"
    assert map_text(store.map("n")) == f"@n: {0x7F00_1235}\n"

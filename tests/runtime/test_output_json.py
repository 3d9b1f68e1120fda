"""JSON lines output against bpftrace's tests/runtime/json-output expectations.

Where bpftrace's test compares whole parsed documents (EXPECT_JSON) we compare parsed
objects; where it compares the exact line (EXPECT) we compare bytes.
"""

from __future__ import annotations

import io
import json
import re

from runtime.maps import MapStore
from runtime.output import make_output
from runtime.output.jsonl import JsonOutput, json_escape, map_json, value_json
from runtime.output.values import CArray, Frame, Record, Stack, Usym


def lines_of(fn) -> list[str]:
    out = io.StringIO()
    fn(JsonOutput(out))
    text = out.getvalue()
    assert text.endswith("\n")
    lines = text.splitlines()
    for line in lines:
        json.loads(line)  # every line is a complete JSON document
    return lines


def dump(store: MapStore) -> list[dict]:
    return [json.loads(line) for line in lines_of(lambda o: o.maps_at_exit(store))]


def hist_store(name: str, items) -> MapStore:
    s = MapStore()
    for key, v in items:
        s.aggregate(name, key, "hist", v)
    return s


def test_scalar_and_string_scalar():
    s = MapStore()
    s.assign("scalar", (), 5)
    s.assign("scalar_str", (), "a b \n d e")
    assert lines_of(lambda o: o.maps_at_exit(s)) == [
        '{"type": "map", "data": {"@scalar": 5}}',
        '{"type": "map", "data": {"@scalar_str": "a b \\n d e"}}',
    ]


def test_complex_keys_joined_with_comma():
    s = MapStore()
    s.assign("complex", ("bpftrace", 2), 5)
    assert dump(s) == [{"type": "map", "data": {"@complex": {"bpftrace,2": 5}}}]


def test_keyed_map_and_multiple_maps():
    s = MapStore()
    s.assign("map", ("key1",), 2)
    s.assign("map", ("key2",), 3)
    assert lines_of(lambda o: o.map(s.map("map"))) == [
        '{"type": "map", "data": {"@map": {"key1": 2, "key2": 3}}}'
    ]
    m = MapStore()
    m.assign("map1", ("key1",), 2)
    m.assign("map2", ("key2",), 3)
    assert dump(m) == [
        {"type": "map", "data": {"@map1": {"key1": 2}}},
        {"type": "map", "data": {"@map2": {"key2": 3}}},
    ]


def test_histogram():
    s = hist_store("hist", [((), 2), ((), 1025)])
    expected = [{"min": 2, "max": 3, "count": 1}]
    expected += [{"min": 2**i, "max": 2 ** (i + 1) - 1, "count": 0} for i in range(2, 10)]
    expected += [{"min": 1024, "max": 2047, "count": 1}]
    assert dump(s) == [{"type": "hist", "data": {"@hist": expected}}]


def test_histogram_zero_and_lhist_zero():
    s = hist_store("hist", [((), 2)])
    s.zero("hist")
    s.aggregate("h", (), "lhist", 2, (0, 100, 10))
    s.zero("h")
    assert dump(s) == [
        {"type": "hist", "data": {"@h": []}},
        {"type": "hist", "data": {"@hist": []}},
    ]


def test_multiple_histograms_sorted_by_total():
    s = hist_store("", [(("bpftrace",), 2)] + [(("curl",), v) for v in (-1, 0, 511, 1024, 1025)])
    curl = [{"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1},
            {"min": 1, "max": 1, "count": 0}]
    curl += [{"min": 2**i, "max": 2 ** (i + 1) - 1, "count": 0} for i in range(1, 8)]
    curl += [{"min": 256, "max": 511, "count": 1}, {"min": 512, "max": 1023, "count": 0},
             {"min": 1024, "max": 2047, "count": 2}]
    (line,) = lines_of(lambda o: o.maps_at_exit(s))
    assert json.loads(line) == {"type": "hist", "data": {"@": {
        "bpftrace": [{"min": 2, "max": 3, "count": 1}], "curl": curl}}}
    assert line.index('"bpftrace"') < line.index('"curl"')


def test_multiple_histograms_multiple_keys():
    s = hist_store("", [(("bpftrace", 2), 2), (("curl", 3), 511), (("curl", 3), 1024)])
    assert dump(s) == [{"type": "hist", "data": {"@": {
        "bpftrace,2": [{"min": 2, "max": 3, "count": 1}],
        "curl,3": [{"min": 256, "max": 511, "count": 1}, {"min": 512, "max": 1023, "count": 0},
                   {"min": 1024, "max": 2047, "count": 1}],
    }}}]


def test_hist_10g():
    s = hist_store("", [((), 10 * 1024**3)])
    assert dump(s) == [{"type": "hist", "data": {"@": [
        {"min": 8589934592, "max": 17179869183, "count": 1}]}}]


def test_linear_histograms():
    s = MapStore()
    for v in (2, 50, 1000):
        s.aggregate("h", (), "lhist", v, (0, 100, 10))
    rows = [{"min": lo, "max": lo + 9, "count": int(lo in (0, 50))} for lo in range(0, 100, 10)]
    assert dump(s) == [{"type": "hist", "data": {"@h": rows + [{"min": 100, "count": 1}]}}]
    m = MapStore()
    m.aggregate("stats", ("bpftrace",), "lhist", 2, (0, 100, 10))
    m.aggregate("stats", ("curl",), "lhist", 50, (0, 100, 10))
    m.aggregate("stats", ("bpftrace",), "lhist", 1000, (0, 100, 10))
    bp = [{"min": lo, "max": lo + 9, "count": int(lo == 0)} for lo in range(0, 100, 10)]
    (line,) = lines_of(lambda o: o.maps_at_exit(m))
    assert json.loads(line) == {"type": "hist", "data": {"@stats": {
        "curl": [{"min": 50, "max": 59, "count": 1}],
        "bpftrace": bp + [{"min": 100, "count": 1}]}}}
    assert line.index('"curl"') < line.index('"bpftrace"')


def test_lhist_underflow_bucket():
    s = MapStore()
    s.aggregate("l", (), "lhist", -3, (10, 30, 10))
    s.aggregate("l", (), "lhist", 15, (10, 30, 10))
    assert map_json(s.map("l")) == (
        '{"type": "hist", "data": {"@l": [{"max": 9, "count": 1}, '
        '{"min": 10, "max": 19, "count": 1}]}}\n'
    )


def test_stats():
    s = MapStore()
    s.aggregate("stats", (), "stats", 2)
    s.aggregate("stats", (), "stats", 10)
    assert lines_of(lambda o: o.maps_at_exit(s)) == [
        '{"type": "stats", "data": {"@stats": {"count": 2, "average": 6, "total": 12}}}'
    ]
    m = MapStore()
    m.aggregate("stats", ("curl",), "stats", 2)
    m.aggregate("stats", ("zsh",), "stats", 10)
    assert dump(m) == [{"type": "stats", "data": {"@stats": {
        "curl": {"count": 1, "average": 2, "total": 2},
        "zsh": {"count": 1, "average": 10, "total": 10}}}}]


def test_avg_print_with_top_and_div():
    s = MapStore()
    for k, v in (("a", 10), ("b", 20), ("c", 30), ("d", 40)):
        s.aggregate("", (k,), "avg", v)
    assert lines_of(lambda o: o.map(s.map(""), 2, 10)) == [
        '{"type": "stats", "data": {"@": {"c": 3, "d": 4}}}'
    ]
    assert lines_of(lambda o: o.map(s.map(""), 10, 10)) == [
        '{"type": "stats", "data": {"@": {"a": 1, "b": 2, "c": 3, "d": 4}}}'
    ]


def test_hist_print_with_top():
    s = hist_store("", [((1,), 10), ((2,), 20), ((3,), 30)])
    assert lines_of(lambda o: o.map(s.map(""), 2)) == [
        '{"type": "hist", "data": {"@": {"2": [{"min": 16, "max": 31, "count": 1}], '
        '"3": [{"min": 16, "max": 31, "count": 1}]}}}'
    ]
    assert lines_of(lambda o: o.map(s.map(""), 10)) == [
        '{"type": "hist", "data": {"@": {"1": [{"min": 8, "max": 15, "count": 1}], '
        '"2": [{"min": 16, "max": 31, "count": 1}], "3": [{"min": 16, "max": 31, "count": 1}]}}}'
    ]


def test_printf_and_escaping():
    assert lines_of(lambda o: o.printf("test 5")) == ['{"type": "printf", "data": "test 5"}']
    assert lines_of(lambda o: o.printf('test \r \n \t \\ " bar')) == [
        '{"type": "printf", "data": "test \\r \\n \\t \\\\ \\" bar"}'
    ]
    assert json_escape("\x01\x1f\x7f") == "\\u0001\\u001f\x7f"


def test_time_cat_syscall_join_messages():
    out = lines_of(lambda o: (o.message("time", "12:34:56\n"), o.message("syscall", "a b c\n")))
    assert re.match(r'^\{"type": "time", "data": "[0-9]*:[0-9]*:[0-9]*\\n"\}$', out[0])
    assert out[1] == '{"type": "syscall", "data": "a b c\\n"}'


def test_tuples_and_values():
    s = MapStore()
    s.assign("", (), (1, 2, "string", (4, 5)))
    assert lines_of(lambda o: o.map(s.map(""))) == [
        '{"type": "map", "data": {"@": [1,2,"string",[4,5]]}}'
    ]
    s.assign("", (), (1, 2, 'string with "quotes"'))
    assert lines_of(lambda o: o.map(s.map(""))) == [
        '{"type": "map", "data": {"@": [1,2,"string with \\"quotes\\""]}}'
    ]
    assert lines_of(lambda o: o.value(5)) == ['{"type": "value", "data": 5}']
    assert lines_of(lambda o: o.value((1, 2, "string"))) == [
        '{"type": "value", "data": [1,2,"string"]}'
    ]
    assert lines_of(lambda o: o.value(b"bpftrace\0")) == [
        '{"type": "value", "data": "bpftrace"}'
    ]


def test_structs_and_arrays():
    # bpftrace json-output print_non_map_struct / _nested_struct / tuple_with_struct
    assert lines_of(lambda o: o.value(Record((("m", 2), ("n", 3))))) == [
        '{"type": "value", "data": {"m": 2, "n": 3}}'
    ]
    nested = Record((("y", Record((("m", CArray((2,))),))), ("a", Record((("n", 3),)))))
    assert lines_of(lambda o: o.value(nested)) == [
        '{"type": "value", "data": {"y": {"m": [2]}, "a": {"n": 3}}}'
    ]
    s = MapStore()
    s.assign("", (), (0, Record((("m", 2), ("n", 3)))))
    assert lines_of(lambda o: o.map(s.map(""))) == [
        '{"type": "map", "data": {"@": [0,{"m": 2, "n": 3}]}}'
    ]


def test_stacks_and_symbols_are_strings():
    st = Stack((Frame("f", 1, 0x10), Frame(None, 0, 0x20)))
    assert value_json(st) == '"\\n        f+1\\n        0x20\\n"'
    assert value_json(Usym(0x401000, "main")) == '"main"'
    s = MapStore()
    s.aggregate("", (st,), "count")
    assert json.loads(map_json(s.map(""))) == {
        "type": "map", "data": {"@": {"\n        f+1\n        0x20\n": 1}}}


def test_count_div_and_empty_maps():
    s = MapStore()
    for _ in range(7):
        s.aggregate("c", ("k",), "count")
    s.aggregate("empty", (), "count")
    s.clear("empty")
    assert lines_of(lambda o: o.map(s.map("c"), 0, 2)) == [
        '{"type": "map", "data": {"@c": {"k": 3}}}'
    ]
    assert map_json(s.map("empty")) == ""
    assert [d["data"] for d in dump(s)] == [{"@c": {"k": 7}}]


def test_attached_lost_error_warning():
    assert lines_of(lambda o: (o.attached_probes(2), o.lost_events(3), o.error("bad\nthing"),
                               o.warning("w"))) == [
        '{"type": "attached_probes", "data": {"probes": 2}}',
        '{"type": "lost_events", "data": {"events": 3}}',
        '{"type": "error", "data": "bad\\nthing"}',
        '{"type": "warning", "data": "w"}',
    ]


def test_make_output_picks_the_sink():
    out = io.StringIO()
    make_output("json", out).value(1)
    make_output("text", out).value(1)
    assert out.getvalue() == '{"type": "value", "data": 1}\n1\n'

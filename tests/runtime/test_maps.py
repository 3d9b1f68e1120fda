"""MapStore: aggregation semantics (bpftrace's integer rules), defaults, map operations."""

from __future__ import annotations

import threading

import pytest

from runtime.aggregations import HIST_BUCKETS, MapError, hist_index, lhist_index
from runtime.maps import MapStore
from runtime.output.text import map_text
from runtime.output.values import Frame, Stack
from uplang.plan import MapDecl

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def test_count_sum_min_max():
    s = MapStore()
    for v in (5, -3, 10):
        s.aggregate("c", ("a",), "count")
        s.aggregate("s", ("a",), "sum", v)
        s.aggregate("mn", (), "min", v)
        s.aggregate("mx", (), "max", v)
    assert s.get("c", ("a",)) == 3
    assert s.get("s", ("a",)) == 12
    assert s.get("mn") == -3
    assert s.get("mx") == 10


def test_sum_wraps_like_int64_and_count_is_unsigned():
    s = MapStore()
    s.aggregate("s", (), "sum", I64_MAX)
    s.aggregate("s", (), "sum", 1)
    assert s.get("s") == I64_MIN
    c = s.map("c")
    s.aggregate("c", (), "count")
    c.entries[()].count = 2**64 - 1
    s.aggregate("c", (), "count")
    assert s.get("c") == 0


def test_avg_and_stats_use_c_integer_division():
    s = MapStore()
    for v in (-7, 0):  # -7 / 2 truncates toward zero in C
        s.aggregate("a", (), "avg", v)
        s.aggregate("st", (), "stats", v)
    assert s.get("a") == -3
    state = s.map("st").entries[()]
    assert (state.count, state.average, state.total) == (2, -3, -7)


def test_hist_buckets():
    assert [hist_index(v) for v in (-5, -1, 0, 1, 2, 3, 4, 7, 8, 1023, 1024)] == [
        0, 0, 1, 2, 3, 3, 4, 4, 5, 11, 12,
    ]
    assert hist_index(I64_MAX) == HIST_BUCKETS - 1
    assert hist_index(2**64 - 1) == 0  # an all-ones register is -1
    s = MapStore()
    s.aggregate("h", (), "hist", 2**33 + 1)
    assert s.map("h").entries[()].buckets[hist_index(2**33)] == 1


def test_lhist_buckets_and_edges():
    # lhist(v, 0, 10, 2): (..., 0) | [0,2) [2,4) [4,6) [6,8) [8,10) | [10, ...)
    got = [lhist_index(v, 0, 10, 2) for v in (-1, 0, 1, 2, 9, 10, 11, 10**9)]
    assert got == [0, 1, 1, 2, 5, 6, 6, 6]
    # a range that step does not divide: values past the last full bucket go high
    assert lhist_index(9, 0, 10, 3) == 4
    assert lhist_index(-11, -10, 10, 5) == 0
    assert lhist_index(-10, -10, 10, 5) == 1


def test_lhist_arguments_are_checked_and_fixed_per_map():
    s = MapStore()
    s.aggregate("l", (), "lhist", 3, (0, 100, 10))
    with pytest.raises(MapError, match="same on every use"):
        s.aggregate("l", (), "lhist", 3, (0, 200, 10))
    with pytest.raises(MapError, match="step"):
        s.aggregate("m", (), "lhist", 3, (0, 100, 0))
    with pytest.raises(MapError, match="greater than min"):
        s.aggregate("n", (), "lhist", 3, (10, 10, 1))
    with pytest.raises(MapError, match="1000"):
        s.aggregate("o", (), "lhist", 3, (0, 10_000, 1))


def test_missing_keys_read_as_zero_or_empty_string():
    s = MapStore([MapDecl("name", 1, ("int",), "str"), MapDecl("n", 1, ("int",), "int")])
    assert s.get("name", (1,)) == ""
    assert s.get("n", (1,)) == 0
    assert s.get("never_seen", ("x",)) == 0
    s.assign("t", (), "abc")
    assert s.get("t", ("other",)) == ""


def test_assign_wraps_integers_and_bytes_keys_equal_str_keys():
    s = MapStore()
    s.assign("x", (b"bash\0junk",), 2**64 + 5)
    assert s.get("x", ("bash",)) == 5
    assert s.has_key("x", "bash")  # a bare key is a one-element key
    assert s.len("x") == 1


def test_delete_clear_zero():
    s = MapStore()
    for k in ("a", "b"):
        s.aggregate("c", (k,), "count")
        s.aggregate("h", (k,), "hist", 5)
        s.assign("v", (k,), 7)
    assert s.delete("c", ("a",)) is True
    assert s.delete("c", ("a",)) is False
    assert s.len("c") == 1
    s.zero("h")
    s.zero("v")
    assert s.len("h") == 2 and s.map("h").entries[("a",)].total == 0
    assert s.get("v", ("b",)) == 0 and s.has_key("v", ("b",))
    s.clear("v")
    assert s.len("v") == 0 and not s.has_key("v", ("b",))


def test_items_sorted_by_key_for_loops():
    s = MapStore()
    for k in (3, -1, 10, 0):
        s.assign("m", (k,), k * 2)
    # bpftrace compares integer keys as uint64: -1 sorts last
    assert s.items("m") == [(0, 0), (3, 6), (10, 20), (-1, -2)]
    s.assign("two", ("b", 1), 1)
    s.assign("two", ("a", 2), 2)
    s.assign("two", ("a", 1), 3)
    assert s.items("two") == [(("a", 1), 3), (("a", 2), 2), (("b", 1), 1)]
    s.aggregate("c", ("x",), "count")
    assert s.items("c") == [("x", 1)]
    assert s.items("nothing") == []


def test_incdec_wraps_and_returns_the_expression_value():
    s = MapStore()
    s.assign("k", (), I64_MAX)
    assert s.incdec("k", (), "++", prefix=False) == I64_MAX
    assert s.get("k") == I64_MIN
    assert s.incdec("k", (), "--", prefix=True) == I64_MAX
    assert s.incdec("fresh", ("a",), "++", prefix=True) == 1


def test_kind_errors():
    s = MapStore()
    s.aggregate("c", (), "count")
    with pytest.raises(MapError, match="count"):
        s.assign("c", (), 5)
    with pytest.raises(MapError, match="count"):
        s.incdec("c", (), "++", prefix=True)
    with pytest.raises(MapError):
        s.aggregate("c", (), "sum", 1)
    s.aggregate("h", (), "hist", 1)
    with pytest.raises(MapError, match="hist"):
        s.get("h")
    s.assign("str", (), "x")
    with pytest.raises(MapError, match="integer"):
        s.incdec("str", (), "++", prefix=True)
    s.assign("k", (1,), 1)
    with pytest.raises(MapError, match="key"):
        s.assign("k", (1, 2), 1)
    with pytest.raises(MapError):
        s.aggregate("c", (), "median", 1)


def test_error_messages_are_single_lines():
    s = MapStore()
    s.aggregate("c", (), "count")
    with pytest.raises(MapError) as e:
        s.assign("c", (), 1)
    assert "\n" not in e.value.message


def test_stack_values_and_keys():
    st = Stack((Frame("f", 4, 0x401004), Frame(None, 0, 0x7F00)))
    s = MapStore()
    s.aggregate("", (st,), "count")
    s.aggregate("", (st,), "count")
    assert s.get("", (st,)) == 2
    s.assign("last", (), st)
    assert s.map("last").kind == "stack"


def test_names_sorted_and_decls_applied():
    s = MapStore([MapDecl("l", 0, (), "lhist", (0, 10, 1))])
    s.aggregate("b", (), "count")
    s.aggregate("", (), "count")
    s.aggregate("l", (), "lhist", 4)
    assert s.names() == ["", "b", "l"]
    assert s.map("l").entries[()].buckets[5] == 1


@pytest.mark.timeout(60)
def test_printing_while_another_thread_updates():
    s = MapStore()
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(5_000):
                s.aggregate("c", (i,), "count")  # new keys: the dict keeps growing
                s.aggregate("h", (i % 7,), "hist", i)
        except BaseException as e:  # noqa: B036 - reported by the main thread
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    while not done.is_set():
        map_text(s.map("c"))
        map_text(s.map("h"))
    t.join()
    assert errors == []
    assert sum(v for _, v in s.items("c")) == 5_000


def test_declared_kind_spellings_are_canonical():
    s = MapStore([
        MapDecl("st", 1, ("int",), "ustack"),
        MapDecl("name", 1, ("int",), "string"),
        MapDecl("odd", 0, (), "something_new"),
    ])
    s.assign("st", (1,), Stack((Frame("f", 0, 1),)))
    s.assign("name", (1,), "bash")
    s.assign("odd", (), 3)  # an unknown declared kind yields to the first value
    assert (s.map("st").kind, s.map("name").kind, s.map("odd").kind) == ("stack", "str", "int")
    with pytest.raises(MapError, match="holds str values, not int"):
        s.assign("name", (2,), 5)


def test_declare_binds_empty_maps_and_refuses_a_clash_with_held_values() -> None:
    store = MapStore()
    store.declare([MapDecl("c", 1, ("int",), "count"), MapDecl("s", 0, (), "string")])
    assert (store.map("c").kind, store.map("c").key_arity) == ("count", 1)
    assert store.map("s").kind == "str"
    store.aggregate("c", (1,), "count")
    # Same kind again: fine. Another kind while it holds values: refused.
    store.declare([MapDecl("c", 1, ("int",), "count")])
    with pytest.raises(MapError, match=r"@c still holds count values with 1 key\(s\)"):
        store.declare([MapDecl("c", 0, (), "hist")])
    store.clear("c")
    store.declare([MapDecl("c", 0, (), "hist")])
    assert store.map("c").kind == "hist"





@pytest.mark.parametrize("bits", range(6))
def test_hist_bits_buckets_hold_their_values(bits: int) -> None:
    from runtime.aggregations import hist_bucket_count, hist_index
    from runtime.output.hist import hist_bounds

    values = [*range(0, 5000), *(1 << p for p in range(63)), *((1 << p) - 1 for p in range(64)),
              (1 << 63) - 1]
    for v in values:
        i = hist_index(v, bits)
        lo, hi = hist_bounds(i, bits)
        assert lo <= v <= hi, (v, i, lo, hi)
    assert hist_index(-1, bits) == 0
    assert hist_bucket_count(bits) == hist_index((1 << 63) - 1, bits) + 1
    # Indices are dense: consecutive buckets share a boundary.
    for i in range(1, hist_bucket_count(bits) - 1):
        assert hist_bounds(i, bits)[1] + 1 == hist_bounds(i + 1, bits)[0]


def test_hist_bits_json_and_map_consistency() -> None:
    store = MapStore()
    for v in (8, 9, 10, 300):
        store.aggregate("h", (), "hist", v, hist_bits=2)
    state = store.map("h").entries[()]
    from runtime.output.hist import hist_json

    rows = [(8, 9, 2), (10, 11, 1), *_rows_between(12, 300)]
    assert rows[-1] == (256, 319, 1)
    assert hist_json(state.buckets, 1, state.bits) == "[" + ", ".join(
        f'{{"min": {lo}, "max": {hi}, "count": {c}}}' for lo, hi, c in rows) + "]"
    with pytest.raises(MapError, match="bits must be the same on every use"):
        store.aggregate("h", (), "hist", 1, hist_bits=3)


def _rows_between(start: int, value: int) -> list[tuple[int, int, int]]:
    """(min, max, count) rows of hist(x, 2) from `start` up to the bucket of `value`."""
    rows = []
    lo = start
    while True:
        p = lo.bit_length() - 3  # 4 buckets per power of two: width 2^p
        hi = lo + (1 << p) - 1
        rows.append((lo, hi, 1 if lo <= value <= hi else 0))
        if lo <= value <= hi:
            return rows
        lo = hi + 1

"""Issue #4 gaps below the process level: the checks' view of sleep(), exit(code) and
hist() bits, CheckOptions carrying known state, MapStore.declare, pointer values, and
exit codes from run_plan."""

from __future__ import annotations

import pytest

from runtime.executor import RunOptions, run_plan
from runtime.handlers.support import HandlerSupport
from runtime.maps import MapError, MapStore
from runtime.output.jsonl import value_json
from runtime.output.text import map_text
from runtime.output.values import Pointer
from runtime.output.valuetext import value_text
from uplang.checks import CheckOptions, check
from uplang.diagnostics import UplangCheckError
from uplang.parser import parse
from uplang.plan import MapDecl
from uplang.planner import compile_script


def errors_of(text: str, options: CheckOptions | None = None) -> list[str]:
    try:
        check(parse(text, "t.up"), options or CheckOptions(), text)
    except UplangCheckError as exc:
        return [d.message for d in exc.diagnostics]
    return []


# ---------------------------------------------------------------- front end


def test_sleep_is_a_function_of_the_language() -> None:
    assert errors_of("BEGIN { sleep(10); }") == []
    assert errors_of('BEGIN { sleep("x"); }') == ["sleep() needs an integer here, not a string"]
    assert errors_of("BEGIN { sleep(-1); }") == [
        "sleep() needs a duration in ms, not negative"]
    assert errors_of("BEGIN { sleep(); }") == ["sleep() takes 1 argument, got 0"]
    assert "sleep() returns no value" in errors_of("BEGIN { $x = sleep(1); }")


def test_exit_code_range() -> None:
    assert errors_of("BEGIN { exit(0); exit(255); exit(); }") == []
    assert errors_of("BEGIN { exit(256); }") == ["exit code 256 is out of range (0-255)"]
    assert errors_of("BEGIN { exit(-1); }") == ["exit code -1 is out of range (0-255)"]


def test_hist_bits() -> None:
    assert errors_of("BEGIN { @h = hist(1, 0); @g = hist(1, 5); }") == []
    assert errors_of("BEGIN { @h = hist(1, 6); }") == ["hist() bits must be between 0 and 5"]
    assert errors_of("BEGIN { @h = hist(1, $x); }") != []


def test_check_options_carry_known_thread_locals_and_maps() -> None:
    first = check(parse("uprobe:a:f { self->p = arg0; @m[1] = count(); }", "a.up"),
                  CheckOptions())
    assert set(first.thread_locals) == {"p"}
    assert set(first.map_states) == {"m"}
    later = "uprobe:a:g { printf(\"%d\\n\", self->p); @m[2, 3] = count(); }"
    # Alone, the later clause reads a thread-local nobody assigns; with what the first
    # check learnt it does not, and the map's key shape is held to the first clause's.
    alone = errors_of(later)
    assert any("self->p" in e for e in alone)
    known = CheckOptions(known_thread_locals=first.thread_locals,
                         known_maps=first.map_states)
    with_known = errors_of(later, known)
    assert not any("self->p" in e for e in with_known)
    assert any("@m" in e for e in with_known)
    # The caller's states are not changed by a later check.
    check(parse("uprobe:a:g { @n = count(); }", "b.up"), known)
    assert set(first.map_states) == {"m"} and first.map_states["m"].key_kinds == ["int"]


# ---------------------------------------------------------------- maps


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


# ---------------------------------------------------------------- values


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


class _Regs:
    rip = 0x1234


class _Probe:
    kind = "profile"
    symbol = ""
    label = "profile:hz:99"


class _SampleCtx:
    pid = 1
    regs = _Regs()
    probe = _Probe()

    @staticmethod
    def symbolize(addr: int) -> str:
        return f"spin_here+{addr - 0x1200}"


def test_func_in_a_sample_is_the_function_rip_is_in() -> None:
    support = HandlerSupport(maps=MapStore(), emitter=None, stop=lambda: None)
    assert support.func(_SampleCtx()) == "spin_here"


def test_thread_exit_drops_that_thread_only() -> None:
    support = HandlerSupport(maps=MapStore(), emitter=None, stop=lambda: None)
    support.tls.update({10: {"x": 1}, 11: {"x": 2}})
    support.thread_exited(5, 10)
    assert support.tls == {11: {"x": 2}}


# ---------------------------------------------------------------- exit codes


def _options(out: str) -> RunOptions:
    return RunOptions(command=None, pid=None, output=out, quiet=True)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("text", "code"), [
    ("BEGIN { exit(4); }", 4),
    ("BEGIN { exit(); }", 0),
    ("interval:ms:10 { @n = count(); if (@n == 3) { exit(@n + 2); } }", 5),
    # The first exit() decides; END's own exit() after it does not change the code.
    ("BEGIN { exit(6); } END { exit(9); }", 6),
])
def test_run_plan_returns_the_exit_code(tmp_path, text: str, code: int) -> None:
    plan = compile_script(text, "t.up", CheckOptions())
    assert run_plan(plan, _options(str(tmp_path / "out"))) == code


@pytest.mark.timeout(30)
def test_sleep_in_begin_delays_what_follows(tmp_path) -> None:
    import time

    out = tmp_path / "out"
    plan = compile_script('BEGIN { printf("a\\n"); sleep(120); printf("b\\n"); exit(); }',
                          "t.up", CheckOptions())
    start = time.monotonic()
    assert run_plan(plan, _options(str(out))) == 0
    assert time.monotonic() - start >= 0.12
    assert out.read_text().startswith("a\nb\n")


# ---------------------------------------------------------------- hist(x, bits)


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

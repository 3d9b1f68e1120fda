"""Property-based tests: nothing but the tool's own errors ever escapes the front end, and
every parsed script prints back to text that parses to the same tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uplang import unparse
from uplang.checks import CheckOptions
from uplang.diagnostics import UplangError
from uplang.parser import parse
from uplang.planner import compile_script
from uplang.planprint import format_plan

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.up"))
SEEDS = [p.read_text() for p in EXAMPLES] + [
    "uprobe:a:f /arg0 > 1 && comm == \"x\"/ { @[comm, tid] = count(); $x = (uint8)arg1; }",
    "struct S { int a; char n[4]; };\nuprobe:a:f { $s = (struct S *)arg0; @ = $s->a; }",
    "BEGIN { $t = (1, \"a\"); printf(\"%d %s\\n\", $t.0, $t.1); while ($i < 3) { $i++; } }",
]

# Fragments a script is made of, so that random joins reach deep into the grammar.
TOKENS = [
    "uprobe:", "uretprobe:", "usdt:", "BEGIN", "END", "interval:s:1", "profile:hz:9", "libc",
    ":", "malloc", "/", "{", "}", "(", ")", "[", "]", ";", ",", "@", "@m", "$x", "$1", "$#",
    "self->", "x", "=", "+=", "==", "++", "+", "-", "*", "&", "!", "~", "?", ".", "->", "0",
    "1_0", "0x1f", "017", '"s"', '"\\n"', "if", "else", "while", "for", "unroll", "return",
    "break", "continue", "printf", "count", "hist", "str", "sizeof", "struct", "S", "int32",
    "config", "sync", "#include", "//c\n", "/*c*/", "\n", " ", "pid", "arg0", "retval", "u",
    "pid$target", "entry", "kprobe:", "kstack", "0.1", "'", "\\", "`", "\t", "#!",
]

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def front_end(text: str) -> None:
    """The whole front end; only UplangError may come out of it."""
    try:
        plan = compile_script(text, "h.up", CheckOptions(unsafe=True, params=("1", "a")))
    except UplangError as exc:
        rendered = exc.render()
        assert rendered and "Traceback" not in rendered
        assert all(d.line >= 0 and d.col >= 0 for d in exc.diagnostics)
        return
    format_plan(plan)


@pytest.mark.timeout(300)
@FAST
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    front_end(text)


@pytest.mark.timeout(300)
@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_sequences(tokens: list[str]) -> None:
    front_end(" ".join(tokens))


@pytest.mark.timeout(300)
@FAST
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3),
                       st.sampled_from(TOKENS + ["", "a", "9"])), min_size=1, max_size=4),
)
def test_mutated_scripts(seed: str, edits: list[tuple[int, int, str]]) -> None:
    text = seed
    for pos, cut, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + cut:]
    front_end(text)


@pytest.mark.parametrize("text", SEEDS)
def test_unparse_round_trip_of_seeds(text: str) -> None:
    tree = parse(text)
    assert parse(unparse.program(tree)) == tree


@pytest.mark.timeout(300)
@FAST
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3),
                       st.sampled_from(TOKENS)), min_size=1, max_size=3),
)
def test_unparse_round_trip_of_mutants(seed: str, edits: list[tuple[int, int, str]]) -> None:
    text = seed
    for pos, cut, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + cut:]
    try:
        tree = parse(text)
    except UplangError:
        return
    assert parse(unparse.program(tree)) == tree

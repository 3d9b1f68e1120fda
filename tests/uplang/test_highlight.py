"""The pygments lexers: exact token streams for representative input, and no error tokens
on every example script (whatever is typed must colour without failing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygments.token import (
    Comment,
    Error,
    Generic,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
)

from uplang.app.highlight import ReplLexer, UplangLexer

ROOT = Path(__file__).resolve().parents[2]


def tokens(text: str, lexer=None) -> list[tuple[object, str]]:  # noqa: ANN001
    """Tokens without whitespace, as (type, text)."""
    lexer = lexer or UplangLexer()
    return [(t, v) for t, v in lexer.get_tokens(text) if v.strip()]


def test_probe_spec_predicate_and_body():
    got = tokens('uretprobe:libc:malloc+4 /arg0 > 0x10/ { @sz[tid] = hist(retval); }')
    assert got == [
        (Keyword.Namespace, "uretprobe"), (Punctuation, ":"), (Name.Function, "libc"),
        (Punctuation, ":"), (Name.Function, "malloc"), (Number, "+4"),
        (Operator, "/"), (Name.Builtin, "arg0"), (Operator, ">"), (Number, "0x10"),
        (Operator, "/"), (Punctuation, "{"), (Name.Variable.Global, "@sz"),
        (Punctuation, "["), (Name.Builtin, "tid"), (Punctuation, "]"), (Operator, "="),
        (Name.Function.Magic, "hist"), (Punctuation, "("), (Name.Builtin, "retval"),
        (Punctuation, ")"), (Punctuation, ";"), (Punctuation, "}"),
    ]


def test_strings_variables_thread_locals_and_types():
    got = tokens('BEGIN { $x = (uint8)self->n; printf("%-5s\\n", $1); // done\n}')
    assert got == [
        (Keyword.Namespace, "BEGIN"), (Punctuation, "{"), (Name.Variable, "$x"),
        (Operator, "="), (Punctuation, "("), (Keyword.Type, "uint8"), (Punctuation, ")"),
        (Name.Builtin.Pseudo, "self"), (Operator, "->"), (Name.Variable.Instance, "n"),
        (Punctuation, ";"), (Name.Function.Magic, "printf"), (Punctuation, "("),
        (String, '"'), (String.Interpol, "%-5s"), (String.Escape, "\\n"), (String, '"'),
        (Punctuation, ","), (Name.Variable.Magic, "$1"), (Punctuation, ")"),
        (Punctuation, ";"), (Comment.Single, "// done"), (Punctuation, "}"),
    ]


def test_usdt_quoted_segment_and_keywords():
    got = tokens('usdt:"/opt/my app":prov:name { if (arg0) { return; } }')
    assert got[:6] == [
        (Keyword.Namespace, "usdt"), (Punctuation, ":"), (String, '"/opt/my app"'),
        (Punctuation, ":"), (Name.Function, "prov"), (Punctuation, ":"),
    ]
    assert (Keyword, "if") in got and (Keyword, "return") in got


def test_half_typed_input_has_no_error_tokens():
    for text in ('uprobe:libc:malloc { printf("unterminated', "/* open comment",
                 "uprobe:", "{ @", "struct S { int a; "):
        assert all(t is not Error for t, _ in UplangLexer().get_tokens(text)), text


def test_repl_commands():
    assert tokens(":print @bytes", ReplLexer()) == [
        (Generic.Prompt, ":print"), (Name.Variable.Global, "@bytes"),
    ]
    assert tokens(":del 3", ReplLexer()) == [(Generic.Prompt, ":del"), (Number, "3")]
    # Language text lexes as in UplangLexer.
    assert tokens("END { }", ReplLexer()) == tokens("END { }")


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.up")), ids=lambda p: p.name)
def test_examples_lex_without_errors(script):
    text = script.read_text()
    toks = list(UplangLexer().get_tokens(text))
    assert all(t is not Error for t, _ in toks)
    expected = text if text.endswith("\n") else text + "\n"
    assert "".join(v for _, v in toks) == expected

"""The parser: one script per construct, compared with the AST written by hand."""

from __future__ import annotations

import pytest

from uplang import ast as A
from uplang.diagnostics import UplangSyntaxError
from uplang.parser import parse


def body(text: str) -> tuple[A.Stmt, ...]:
    return parse(f"uprobe:/bin/true:main {{ {text} }}").clauses[0].body


def expr(text: str) -> A.Expr:
    (stmt,) = body(f"{text};")
    assert isinstance(stmt, A.ExprStmt)
    return stmt.expr


def probe(text: str) -> A.ProbeSpec:
    return parse(f"{text} {{ }}").clauses[0].probes[0]


I = A.Int  # noqa: E741 - reads like the literal it builds
B = A.Builtin


def bin_(op: str, a: A.Expr, b: A.Expr) -> A.Binary:
    return A.Binary(op, a, b)


# ------------------------------------------------------------------ probes

PROBES = [
    ("uprobe:/bin/bash:readline", A.ProbeSpec("uprobe", "/bin/bash", "readline")),
    ("u:libc:malloc", A.ProbeSpec("uprobe", "libc", "malloc")),
    ("uprobe:libc.so.6:free", A.ProbeSpec("uprobe", "libc.so.6", "free")),
    ("uprobe:./a.out:f+0x10", A.ProbeSpec("uprobe", "./a.out", "f", offset=16)),
    ("uprobe:./a.out:f+8", A.ProbeSpec("uprobe", "./a.out", "f", offset=8)),
    ("uprobe:./a.out:0x401000", A.ProbeSpec("uprobe", "./a.out", address=0x401000)),
    ('uprobe:./a.out:"weird name"', A.ProbeSpec("uprobe", "./a.out", "weird name")),
    ('uprobe:./a.out:"0x10"', A.ProbeSpec("uprobe", "./a.out", "0x10")),
    ("uprobe:libc:open*", A.ProbeSpec("uprobe", "libc", "open*")),
    ("uprobe:/usr/lib/*/libc.so.?:str?cmp", A.ProbeSpec("uprobe", "/usr/lib/*/libc.so.?",
                                                        "str?cmp")),
    ("uprobe::main", A.ProbeSpec("uprobe", "", "main")),
    ("uretprobe:/bin/bash:readline", A.ProbeSpec("uretprobe", "/bin/bash", "readline")),
    ("ur:libc:malloc", A.ProbeSpec("uretprobe", "libc", "malloc")),
    ("usdt:./prog:myprov:tick", A.ProbeSpec("usdt", "./prog", usdt_provider="myprov",
                                            usdt_name="tick")),
    ("usdt:./prog:tick", A.ProbeSpec("usdt", "./prog", usdt_name="tick")),
    ("U:./prog:p:n*", A.ProbeSpec("usdt", "./prog", usdt_provider="p", usdt_name="n*")),
    ("BEGIN", A.ProbeSpec("BEGIN")),
    ("begin", A.ProbeSpec("BEGIN")),
    ("END", A.ProbeSpec("END")),
    ("end", A.ProbeSpec("END")),
    ("interval:s:1", A.ProbeSpec("interval", unit="s", value=1)),
    ("interval:ms:250", A.ProbeSpec("interval", unit="ms", value=250)),
    ("interval:us:1_000", A.ProbeSpec("interval", unit="us", value=1000)),
    ("i:hz:10", A.ProbeSpec("interval", unit="hz", value=10)),
    ("interval:2s", A.ProbeSpec("interval", unit="s", value=2)),
    ("profile:hz:99", A.ProbeSpec("profile", unit="hz", value=99)),
    ("pid$target:libc:malloc:entry", A.ProbeSpec("uprobe", "libc", "malloc")),
    ("pid$target:libc:malloc:return", A.ProbeSpec("uretprobe", "libc", "malloc")),
    ("pid$target:a.out:main:1c", A.ProbeSpec("uprobe", "", "main", offset=0x1C)),
]


@pytest.mark.parametrize("text,expected", PROBES, ids=[p[0] for p in PROBES])
def test_probe_specs(text: str, expected: A.ProbeSpec) -> None:
    got = probe(text)
    assert got == A.ProbeSpec(**{**expected.__dict__, "raw": text})


def test_probe_list_predicate_and_sync() -> None:
    (clause,) = parse("sync uprobe:a:f, uretprobe:a:g /pid == 3/ { exit(); }").clauses
    assert clause.sync
    assert [p.func for p in clause.probes] == ["f", "g"]
    assert clause.predicate == bin_("==", B("pid"), I(3))
    assert clause.body == (A.ExprStmt(A.Call("exit")),)


def test_predicate_with_division_and_no_space_before_brace() -> None:
    (clause,) = parse("u:a:f /arg0 / 2 > 1/{ }").clauses
    assert clause.predicate == bin_(">", bin_("/", B("arg0"), I(2)), I(1))


def test_predicate_closing_slash_before_comments() -> None:
    prog = parse("u:a:f /arg0 / 2/ /* why */ // note\n { }")
    assert prog.clauses[0].predicate == bin_("/", B("arg0"), I(2))


# ------------------------------------------------------------------ program level


def test_shebang_comments_config_and_types() -> None:
    prog = parse(
        "#!/usr/bin/env uprobe\n"
        "// line comment\n"
        "/* block\n comment */\n"
        'config = { max_strlen = 128; stack_mode = perf; missing_probes = "warn" }\n'
        "struct Foo { int32 a; char *name, buf[16]; struct Foo *next; unsigned long x; };\n"
        "union U { uint8 b; int64 q; };\n"
        "enum E { A, B = 5, C, D = -1 };\n"
        "BEGIN { }\n"
    )
    assert prog.config == (
        A.ConfigItem("max_strlen", 128), A.ConfigItem("stack_mode", "perf"),
        A.ConfigItem("missing_probes", "warn"),
    )
    foo, u, e = prog.types
    assert foo == A.TypeDef("struct", "Foo", fields=(
        A.FieldDef("a", A.TypeRef("int32")),
        A.FieldDef("name", A.TypeRef("char", 1)),
        A.FieldDef("buf", A.TypeRef("char"), 16),
        A.FieldDef("next", A.TypeRef("struct Foo", 1)),
        A.FieldDef("x", A.TypeRef("uint64")),
    ))
    assert u.kind == "union" and [f.name for f in u.fields] == ["b", "q"]
    assert e.enumerators == (("A", 0), ("B", 5), ("C", 6), ("D", -1))


# ------------------------------------------------------------------ statements

STATEMENTS = [
    ("$x = 1", A.Assign(A.Var("x"), "=", I(1))),
    ("@m[1, 2] = 3", A.Assign(A.MapRef("m", (I(1), I(2))), "=", I(3))),
    ("@ = count()", A.Assign(A.MapRef(""), "=", A.Call("count"))),
    ("@[comm, func] = count()", A.Assign(A.MapRef("", (B("comm"), B("func"))), "=",
                                         A.Call("count"))),
    ("self->ts = nsecs", A.Assign(A.ThreadLocal("ts"), "=", B("nsecs"))),
    *[(f"$x {op} 2", A.Assign(A.Var("x"), op, I(2)))
      for op in ("+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=")],
    ("$i++", A.ExprStmt(A.IncDec("++", False, A.Var("i")))),
    ("--@n", A.ExprStmt(A.IncDec("--", True, A.MapRef("n")))),
    ("return", A.Return()),
    ("{ $a = 1; }", A.Block((A.Assign(A.Var("a"), "=", I(1)),))),
    ("while ($i < 10) { $i++; }", A.While(bin_("<", A.Var("i"), I(10)),
                                          (A.ExprStmt(A.IncDec("++", False, A.Var("i"))),))),
    ("while (1) { break; continue; }", A.While(I(1), (A.Break(), A.Continue()))),
    ("for ($kv : @m) { print($kv.0); }",
     A.ForMap("kv", "m", (A.ExprStmt(A.Call("print", (A.TupleIndex(A.Var("kv"), 0),))),))),
    ("unroll(5) { $a = 1 }", A.Unroll(5, (A.Assign(A.Var("a"), "=", I(1)),))),
    ("if (1) { }", A.If(I(1), ())),
    ("if (1) { } else { return; }", A.If(I(1), (), (A.Return(),))),
    ("if (1) { } else if (2) { } else { }", A.If(I(1), (), (A.If(I(2), (), ()),))),
]


@pytest.mark.parametrize("text,expected", STATEMENTS, ids=[s[0] for s in STATEMENTS])
def test_statements(text: str, expected: A.Stmt) -> None:
    assert body(text) == (expected,)


def test_statement_separators() -> None:
    stmts = body("; $a = 1;; if (1) { } $b = 2 ")
    assert [type(s).__name__ for s in stmts] == ["Assign", "If", "Assign"]


# ------------------------------------------------------------------ expressions

EXPRESSIONS = [
    ("1_000", I(1000)),
    ("0x1f", I(31)),
    ("0X1F", I(31)),
    ("017", I(15)),
    ("0", I(0)),
    (r'"a\tb\n\"q\"\\ \x41\101\0"', A.Str('a\tb\n"q"\\ AA\0')),
    ("pid", B("pid")),
    ("execname", B("comm")),
    ("arg3", B("arg3")),
    ("$1", A.Positional(1)),
    ("$#", A.Positional(0, count=True)),
    ("self->x", A.ThreadLocal("x")),
    ("@", A.MapRef("")),
    ("@m[1][2]", A.Index(A.MapRef("m", (I(1),)), I(2))),
    ("ustack", B("ustack")),
    ("ustack(5)", A.Call("ustack", (I(5),))),
    ("(1, \"a\")", A.Tuple((I(1), A.Str("a")))),
    ("(1)", I(1)),
    ("$t.1", A.TupleIndex(A.Var("t"), 1)),
    ("1 ? 2 : 3", A.Ternary(I(1), I(2), I(3))),
    ("(uint8)arg0", A.Cast(A.TypeRef("uint8"), B("arg0"))),
    ("(int32)arg0", A.Cast(A.TypeRef("int32"), B("arg0"))),
    ("(unsigned long long)arg0", A.Cast(A.TypeRef("uint64"), B("arg0"))),
    ("(struct Foo *)arg0", A.Cast(A.TypeRef("struct Foo", 1), B("arg0"))),
    ("((struct Foo *)arg0)->bar", A.FieldAccess(A.Cast(A.TypeRef("struct Foo", 1), B("arg0")),
                                                "bar", True)),
    ("$s.x.y", A.FieldAccess(A.FieldAccess(A.Var("s"), "x", False), "y", False)),
    ("$p->end", A.FieldAccess(A.Var("p"), "end", True)),
    ("$p[3]", A.Index(A.Var("p"), I(3))),
    ("*$p", A.Unary("*", A.Var("p"))),
    ("&$p->x", A.Unary("&", A.FieldAccess(A.Var("p"), "x", True))),
    ("!$a", A.Unary("!", A.Var("a"))),
    ("~$a", A.Unary("~", A.Var("a"))),
    ("-$a", A.Unary("-", A.Var("a"))),
    ("sizeof(struct Foo)", A.Sizeof(A.TypeRef("struct Foo"))),
    ("sizeof(int64)", A.Sizeof(A.TypeRef("int64"))),
    ("sizeof($x)", A.Sizeof(A.Var("x"))),
    ("str(arg0, 8)", A.Call("str", (B("arg0"), I(8)))),
    ("printf(\"%d\\n\", 1)", A.Call("printf", (A.Str("%d\n"), I(1)))),
]


@pytest.mark.parametrize("text,expected", EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_expressions(text: str, expected: A.Expr) -> None:
    assert expr(text) == expected


# C precedence and associativity, each compared with the tree C would build.
PRECEDENCE = [
    ("1 + 2 * 3", bin_("+", I(1), bin_("*", I(2), I(3)))),
    ("1 - 2 - 3", bin_("-", bin_("-", I(1), I(2)), I(3))),
    ("1 << 2 + 3", bin_("<<", I(1), bin_("+", I(2), I(3)))),
    ("1 < 2 == 3 > 4", bin_("==", bin_("<", I(1), I(2)), bin_(">", I(3), I(4)))),
    ("1 & 2 == 2", bin_("&", I(1), bin_("==", I(2), I(2)))),
    ("1 | 2 ^ 3 & 4", bin_("|", I(1), bin_("^", I(2), bin_("&", I(3), I(4))))),
    ("1 || 2 && 3", bin_("||", I(1), bin_("&&", I(2), I(3)))),
    ("1 ? 2 : 3 ? 4 : 5", A.Ternary(I(1), I(2), A.Ternary(I(3), I(4), I(5)))),
    ("-1 * 2", bin_("*", A.Unary("-", I(1)), I(2))),
    ("!1 && 2", bin_("&&", A.Unary("!", I(1)), I(2))),
    ("(uint8)1 + 2", bin_("+", A.Cast(A.TypeRef("uint8"), I(1)), I(2))),
    ("*$p + 1", bin_("+", A.Unary("*", A.Var("p")), I(1))),
    ("$a % 3 != 0", bin_("!=", bin_("%", A.Var("a"), I(3)), I(0))),
    ("1 <= 2 >= 3", bin_(">=", bin_("<=", I(1), I(2)), I(3))),
]


@pytest.mark.parametrize("text,expected", PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
def test_precedence(text: str, expected: A.Expr) -> None:
    assert expr(text) == expected


def test_spans_are_one_based_and_cover_the_node() -> None:
    prog = parse("BEGIN {\n  $x = 1 + 22;\n}\n", "s.up")
    (assign,) = prog.clauses[0].body
    assert (assign.span.file, assign.span.line, assign.span.col) == ("s.up", 2, 3)
    right = assign.value.right
    assert (right.span.line, right.span.col, right.span.end_col) == (2, 12, 14)
    assert prog.clauses[0].probes[0].span.col == 1


def test_keywords_are_names_where_a_keyword_cannot_be() -> None:
    assert expr("$p->if") == A.FieldAccess(A.Var("p"), "if", True)
    assert expr("config") == B("config")


def test_begin_end_after_nested_blocks() -> None:
    prog = parse("END { if (1) { } clear(@m); } BEGIN { { } exit(); }")
    assert [c.probes[0].provider for c in prog.clauses] == ["END", "BEGIN"]


@pytest.mark.parametrize(
    "text,message,line,col",
    [
        ("BEGIN { $x = ; }", "unexpected ';'; expected an expression", 1, 14),
        ("BEGIN { printf(\"x\")", "unexpected end of script", 1, 20),
        ("BEGIN { if x { } }", "unexpected 'x'; expected '('", 1, 12),
        ("BEGIN {\n  $x = 1\n  $y = 2 }", "unexpected '$y'", 3, 3),
        ("#include <linux/sched.h>\nBEGIN { }", "#include is not supported", 1, 1),
        ("#define X 1\nBEGIN { }", "preprocessor directive '#define' is not supported", 1, 1),
        ("BEGIN { $x = 09; }", "invalid integer '09'", 1, 14),
        ("BEGIN { $x = 18446744073709551616; }",
         "integer '18446744073709551616' is out of range: it does not fit in 64 bits", 1, 14),
        ("BEGIN {\n  print(99999999999999999999999999); }",
         "integer '99999999999999999999999999' is out of range", 2, 9),
        ("enum E { A = 0x10000000000000000 };",
         "integer '0x10000000000000000' is out of range", 1, 14),
        ("enum E { A = -9223372036854775809 };",
         "integer '-9223372036854775809' is out of range", 1, 15),
        ("config = { max_strlen = 99999999999999999999 }",
         "integer '99999999999999999999' is out of range", 1, 25),
        ('BEGIN { $x = "\\q"; }', "unknown escape sequence '\\q'", 1, 14),
        ("BEGIN { $x = $0; }", "positional parameters start at $1", 1, 14),
        ("BEGIN { $x = 1 ` }", "unexpected '`'", 1, 16),
        ("struct S { int a }", "unexpected '}'", 1, 18),
        ("uprobe:a:f pid { }", "unexpected 'pid'", 1, 12),
        ("BEGIN { (1 + 2 }", "unexpected '}'", 1, 16),
        ('BEGIN { $x = "abc; }', "unterminated string", 1, 14),
    ],
)
def test_syntax_errors(text: str, message: str, line: int, col: int) -> None:
    with pytest.raises(UplangSyntaxError) as info:
        parse(text, "bad.up")
    (diag,) = info.value.diagnostics
    assert message in diag.message or message in diag.headline()
    assert (diag.file, diag.line, diag.col) == ("bad.up", line, col)


def test_syntax_error_rendering_has_caret_and_hint() -> None:
    with pytest.raises(UplangSyntaxError) as info:
        parse("#include <stdio.h>\nBEGIN { }", "inc.up")
    assert info.value.render() == (
        "inc.up:1:1: error: #include is not supported\n"
        "  #include <stdio.h>\n"
        "  ^~~~~~~~~~~~~~~~~~\n"
        "note: only struct/union/enum definitions written in the script are supported; "
        "copy the definitions you need into the script"
    )


def test_deep_nesting_is_a_clean_error() -> None:
    deep = "BEGIN { $x = " + "(" * 3000 + "1" + ")" * 3000 + "; }"
    try:
        prog = parse(deep)
    except UplangSyntaxError as exc:
        assert "nested too deeply" in exc.render()
    else:
        assert prog.clauses


def test_parser_tables_are_named_for_the_grammar_they_were_built_from():
    """A changed grammar (or another Lark) gets its own tables file, so stale tables are
    never loaded; the same text always finds the same file."""
    from uplang.grammar_loader import tables_name

    text = "start: NAME\n%import common.CNAME -> NAME\n"
    assert tables_name(text) == tables_name(text)
    assert tables_name(text) != tables_name(text + "// changed\n")

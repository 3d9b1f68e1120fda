"""The checks: an error corpus (one bad script per check, message and line:col asserted),
error collection across a script, and what the checks infer for the plan."""

from __future__ import annotations

import pytest

from uplang import ast
from uplang.checks import CheckOptions, check
from uplang.diagnostics import UplangCheckError, UplangSyntaxError
from uplang.parser import parse
from uplang.plan import MapDecl, ValueType


def errors(text: str, options: CheckOptions | None = None) -> list[tuple[int, int, str, str]]:
    try:
        check(parse(text, "t.up"), options, text)
    except UplangCheckError as exc:
        return [(d.line, d.col, d.message, d.hint) for d in exc.diagnostics]
    return []


def ok(text: str, options: CheckOptions | None = None):
    return check(parse(text, "t.up"), options, text)


# (script, message fragment, line, col, hint fragment or "", options)
CORPUS = [
    # probes
    ("kprobe:do_sys_open { }", "uprobe traces user space only", 1, 1, "uprobe:", None),
    ("tracepoint:syscalls:sys_enter_open { }", "uprobe traces user space only", 1, 1, "", None),
    ("uprbe:libc:malloc { }", "unknown probe type 'uprbe'", 1, 1, "did you mean 'uprobe'?",
     None),
    ("uretprobe:libc:malloc+4 { }", "offsets are not allowed on return probes", 1, 1, "", None),
    ("uprobe:libc:mall*+4 { }", "an offset needs one function", 1, 1, "", None),
    ("uprobe:libc { }", "expected uprobe:TARGET:FUNCTION", 1, 1, "", None),
    ("uprobe:libc: { }", "needs a function name", 1, 1, "", None),
    ("uprobe:a:f/pid==1/ { }", "'/' in function name", 1, 1, "whitespace", None),
    ("usdt:./p { }", "expected usdt:TARGET:PROVIDER:NAME", 1, 1, "", None),
    ("interval:sec:1 { }", "unknown interval unit 'sec'", 1, 1, "", None),
    ("interval:s:0 { }", "period must be positive", 1, 1, "", None),
    ("interval:s:x { }", "whole number", 1, 1, "", None),
    ("BEGIN:x { }", "BEGIN takes no arguments", 1, 1, "", None),
    ("pid123:libc:malloc:entry { }", "unknown probe type 'pid123'", 1, 1, "pid$target", None),
    ("pid$target:libc:malloc:entyr { }", "unknown pid$target probe name", 1, 1,
     "did you mean 'entry'?", None),
    ("uprobe::main { }", "a probe without a target needs a process", 1, 1, "-p PID",
     CheckOptions(has_process=False)),
    ("sync BEGIN { }", "'sync' needs probes that stop a thread", 1, 1, "", None),
    # builtins and where they are legal
    ("uprobe:a:f { @ = retval; }", "'retval' can only be used in uretprobe probes", 1, 18,
     "uretprobe:", None),
    ("uretprobe:a:f { @ = arg0; }", "'arg0' can only be used in uprobe and usdt probes", 1, 21,
     "", None),
    ("BEGIN { @ = func; }", "'func' can only be used in probes that stop a thread", 1, 13, "",
     None),
    ("interval:s:1 { self->x = 1; }", "'self->x' can only be used", 1, 16, "", None),
    ("BEGIN { @ = pdi; }", "unknown builtin 'pdi'", 1, 13, "did you mean 'pid'?", None),
    ("uprobe:a:f { @ = arg99; }", "out of range", 1, 18, "", None),
    ("uprobe:a:f { @[kstack] = count(); }", "'kstack' is about the kernel", 1, 16,
     "use ustack", None),
    ("uprobe:a:f { @ = args->x; }", "'args' needs the program's debug info", 1, 18, "", None),
    ("BEGIN { @ = args; }", "'args' can only be used in uprobe probes", 1, 13, "", None),
    ("BEGIN { @ = cpid; }", "'cpid' needs a command started with -c", 1, 13, "",
     CheckOptions(has_command=False)),
    ("BEGIN { @ = count; }", "'count' is a function", 1, 13, "", None),
    # functions: names, arity, argument kinds
    ("BEGIN { prinft(\"x\"); }", "unknown function 'prinft'", 1, 9, "did you mean 'printf'?",
     None),
    ("BEGIN { @ = pid(); }", "'pid' is a builtin, not a function", 1, 13, "", None),
    ("BEGIN { exit(1, 2); }", "exit() takes 0 to 1 arguments, got 2", 1, 9, "", None),
    ("BEGIN { printf(); }", "printf() takes at least 1 argument, got 0", 1, 9, "", None),
    ("BEGIN { @ = count(1); }", "count() takes no arguments, got 1", 1, 13, "", None),
    ("uprobe:a:f { @ = lhist(arg0, 0, 100); }", "lhist() takes 4 arguments, got 3", 1, 18,
     "", None),
    ("uprobe:a:f { @ = lhist(arg0, 10, 0, 1); }", "max must be greater than min", 1, 34, "",
     None),
    ("uprobe:a:f { @ = lhist(arg0, 0, 10, $x); }", "integer literal", 1, 37, "", None),
    ("uprobe:a:f { @ = hist(arg0, 9); }", "bits must be between 0 and 5", 1, 29, "", None),
    ("uprobe:a:f { @ = sum(comm); }", "sum() needs an integer", 1, 22, "", None),
    ("uprobe:a:f { $x = count(); }", "count() can only be assigned to a map", 1, 19, "", None),
    ("uprobe:a:f { @ += count(); }", "count() is assigned with '=', not '+='", 1, 14, "", None),
    ("BEGIN { $x = printf(\"a\"); }", "printf() returns no value", 1, 14, "", None),
    ("BEGIN { printf($1); }", "argument 1 of printf() must be a string literal", 1, 16, "",
     None),
    ("BEGIN { printf(\"%d %s\\n\", 1); }", "the format has 2 conversions but 1 argument", 1,
     9, "", None),
    ("BEGIN { printf(\"%d\\n\", comm); }", "%d needs an integer, not a string", 1, 24, "",
     None),
    ("uprobe:a:f { printf(\"%s\\n\", arg0); }", "%s needs a string, not an integer", 1, 29,
     "use str(ADDR)", None),
    ("BEGIN { printf(\"%q\", 1); }", "unknown conversion '%q'", 1, 16, "", None),
    ("uprobe:a:f { @ = reg(\"rxa\"); }", "unknown register 'rxa'", 1, 22, "did you mean 'rax'?",
     None),
    ("uprobe:a:f { signal(\"SIGKIL\"); }", "unknown signal 'SIGKIL'", 1, 21,
     "did you mean 'SIGKILL'?", CheckOptions(unsafe=True)),
    ("uprobe:a:f { @ = ustack(perff, 3); }", "unknown stack mode 'perff'", 1, 25, "", None),
    # found by tests/runtime/test_handlers_accepted.py: accepted, then failed at the hit
    ('BEGIN { @ = strlen(strftime("%H", 1)); }', "strlen() needs a string, not a timestamp",
     1, 20, "", None),
    ('BEGIN { @ = strftime("%H", 1) == "12"; }', "cannot compare a timestamp", 1, 13, "",
     None),
    ("BEGIN { @h = hist(1); }\nEND { @h = hist(2, 3); }",
     "map @h uses hist() with 3 bits here but 0 at line 1", 2, 7, "", None),
    ("BEGIN { @ = strlen(1); }", "strlen() needs a string", 1, 20, "", None),
    ("BEGIN { clear(1); }", "clear() needs a map", 1, 15, "", None),
    ("BEGIN { print(pid, 10); }", "print() with a limit needs a whole map", 1, 15, "", None),
    ("BEGIN { delete(1); }", "delete() needs a map element", 1, 9, "", None),
    # unsafe
    ("uprobe:a:f { system(\"ls\"); }", "system() needs --unsafe", 1, 14, "", None),
    ("uprobe:a:f { signal(\"SIGKILL\"); }", "signal() needs --unsafe", 1, 14, "", None),
    # maps
    ("BEGIN { @m[1] = 1; @m[1, 2] = 2; }", "map @m is used with 2 keys here but with 1 key at "
     "line 1", 1, 20, "", None),
    ("BEGIN { @m[1] = 1; @m[\"a\"] = 2; }", "key 1 of map @m is a string here but an integer",
     1, 23, "", None),
    ("BEGIN { @m = 1; @m = \"a\"; }", "map @m holds an integer (line 1); cannot store a string",
     1, 17, "", None),
    ("uprobe:a:f { @m = count(); @m = 5; }", "map @m mixes the aggregation count() with plain "
     "assignment", 1, 28, "", None),
    ("uprobe:a:f { @m = 5; @m = count(); }", "mixes the aggregation count()", 1, 22, "", None),
    ("uprobe:a:f { @m = count(); @m = sum(arg0); }", "map @m is count() at line 1; it cannot "
     "also be sum()", 1, 28, "", None),
    ("uprobe:a:f { @m = count(); @m++; }", "mixes the aggregation count()", 1, 28, "", None),
    ("BEGIN { @mine = 1; } END { print(@mien); }", "map @mien is used but never assigned", 1,
     34, "did you mean '@mine'?", None),
    ("BEGIN { @m[1] = 1; printf(\"%d\", @m); }", "map @m has 1 key; it is read here with no key",
     1, 33, "", None),
    ("uprobe:a:f { @h = hist(arg0); @x = @h; }", "holds hist(), which can only be printed", 1,
     36, "", None),
    # variables and statements
    ("BEGIN { @ = $y; }", "undefined variable $y", 1, 13, "", None),
    ("BEGIN { $abc = 1; @ = $abd; }", "undefined variable $abd", 1, 23, "did you mean '$abc'?",
     None),
    ("BEGIN { $x = 1; $x = \"s\"; }", "$x holds an integer; cannot assign a string", 1, 17, "",
     None),
    ("uprobe:a:f { @ = self->nope; }", "self->nope is used but never assigned", 1, 18, "", None),
    ("BEGIN { 1 = 2; }", "cannot assign to this expression", 1, 9, "", None),
    ("BEGIN { break; }", "'break' outside a while or for loop", 1, 9, "", None),
    ("BEGIN { unroll(101) { } }", "unroll count must be between 1 and 100", 1, 9, "", None),
    ("BEGIN { if (\"a\") { } }", "a condition must be an integer, not a string", 1, 13, "",
     None),
    ("uprobe:a:f /comm/ { }", "a predicate must be an integer condition", 1, 13, "", None),
    ("BEGIN { @ = comm + 1; }", "'+' needs integers, not a string", 1, 13, "", None),
    ("BEGIN { @ = comm == 1; }", "cannot compare a string with an integer", 1, 13, "", None),
    ("BEGIN { $t = (1, 2); @ = $t.2; }", "tuple index 2 is out of range", 1, 26, "", None),
    ("BEGIN { @ = pid ? 1 : \"a\"; }", "the branches of '?:' differ", 1, 13, "", None),
    # C types
    ("struct S { int a; };\nuprobe:a:f { @ = ((struct T *)arg0)->a; }", "unknown type 'struct T'",
     2, 19, "did you mean 'struct S'?", None),
    ("struct S { int count; };\nuprobe:a:f { @ = ((struct S *)arg0)->cuont; }",
     "struct S has no member 'cuont'", 2, 18, "did you mean 'count'?", None),
    ("struct S { int a; };\nuprobe:a:f { @ = (struct S)arg0; }", "cannot cast to a struct value",
     2, 18, "", None),
    ("uprobe:a:f { @ = arg0->x; }", "'->' needs a pointer to a struct", 1, 18, "cast first",
     None),
    ("struct S { int a; };\nuprobe:a:f { $s = (struct S *)arg0; @ = $s.b; }",
     "struct S has no member 'b'", 2, 41, "its members: a", None),
    ("struct S { struct Nope n; };\nBEGIN { }", "unknown type 'struct Nope' for member 'n'", 1,
     12, "", None),
    ("struct S { struct S inner; };\nBEGIN { }", "struct S contains itself", 1, 12, "", None),
    ("struct S { int a; int a; };\nBEGIN { }", "duplicate member 'a'", 1, 19, "", None),
    ("struct S { int a; };\nstruct S { int b; };\nBEGIN { }", "struct S is defined twice", 2, 1,
     "", None),
    ("BEGIN { @ = sizeof(struct Q); }", "unknown type 'struct Q'", 1, 13, "", None),
    # config
    ("config = { max_strln = 1 }\nBEGIN { }", "unknown config setting 'max_strln'", 1, 12,
     "did you mean 'max_strlen'?", None),
    ("config = { max_strlen = 0 }\nBEGIN { }", "needs a positive integer", 1, 12, "", None),
    ("config = { stack_mode = fast }\nBEGIN { }", "must be one of: bpftrace, perf, raw", 1, 12,
     "", None),
    ("config = { max_strlen = 1; max_strlen = 2 }\nBEGIN { }", "set twice", 1, 28, "", None),
    ("", "the script has no probes", 0, 0, "", None),
]


@pytest.mark.parametrize(
    "text,message,line,col,hint,options", CORPUS, ids=[c[1][:40] for c in CORPUS]
)
def test_error_corpus(text: str, message: str, line: int, col: int, hint: str,
                      options: CheckOptions | None) -> None:
    found = errors(text, options)
    matching = [e for e in found if message in e[2]]
    assert matching, f"no error containing {message!r} in {found}"
    got_line, got_col, _msg, got_hint = matching[0]
    assert (got_line, got_col) == (line, col)
    assert hint in got_hint


def test_every_error_is_reported_in_one_run() -> None:
    text = (
        "uprobe:a:f { @ = retval; prinft(\"x\"); }\n"
        "uretprobe:a:f+1 { system(\"ls\"); @x = $nope; }\n"
        "kprobe:f { }\n"
    )
    found = errors(text)
    assert [(line, col) for line, col, *_ in found] == [
        (1, 18), (1, 26), (2, 1), (2, 19), (2, 38), (3, 1)
    ]


def test_rendering_shows_source_caret_and_note() -> None:
    text = "BEGIN {\n    @ = pdi + 1;\n}\n"
    with pytest.raises(UplangCheckError) as info:
        check(parse(text, "r.up"), None, text)
    assert info.value.render() == (
        "r.up:2:9: error: unknown builtin 'pdi'\n"
        "      @ = pdi + 1;\n"
        "          ^~~\n"
        "note: did you mean 'pid'?"
    )


@pytest.mark.parametrize("text", [
    "uprobe:/bin/bash:readline { printf(\"%s\\n\", str(arg0)); }",
    "uretprobe:/bin/bash:readline { printf(\"%s\\n\", str(retval)); }",
    "u:libc:malloc /pid == 1234/ { @[ustack] = count(); }",
    "BEGIN { printf(\"Tracing... Hit Ctrl-C to end.\\n\"); }",
    "uprobe:a:f { @ = count(); } interval:s:1 { print(@); clear(@); }",
    "uprobe:libc:open* { @[comm, func] = count(); }",
    "uprobe:a:f { @m[tid] = nsecs; } END { print(@m, 10); }",
    "uprobe:./a.out:\"weird name\" { @ = count(); }",
    "pid$target:libc:malloc:entry { @[execname] = count(); }",
    "uprobe:a:f { if (arg0) { @a = 1; } else if (arg1) { @a = 2; } else { @a = 3; } }",
    "BEGIN { $i = 0; while ($i < 10) { $i++; if ($i == 5) { break; } } }",
    "uprobe:a:f { @m[comm] = count(); } END { for ($kv : @m) { printf(\"%s %d\\n\", $kv.0, "
    "$kv.1); } }",
    "BEGIN { $i = 0; unroll(5) { $i++; } @ = $i; }",
    "BEGIN { $t = (1, \"two\"); printf(\"%d %s\\n\", $t.0, $t.1); }",
    "uprobe:a:f { @ = (uint8)arg0 + (int32)arg1; }",
    "struct Foo { int32 a; char name[8]; struct Foo *next; };\n"
    "uprobe:a:f { $f = (struct Foo *)arg0; printf(\"%d %s %d\\n\", $f->a, $f->name, "
    "$f->next->a); }",
    "BEGIN { printf(\"%s %d %d\\n\", str($1), $2, $#); }",
    "BEGIN { printf(\"a\\tb\\x41\\101\\\\\\n\"); @ = 1_000 + 0x1f + 017; }",
    "config = { max_strlen = 128; }\nBEGIN { }",
    "uprobe:a:f { @s = sum(arg0); @a = avg(arg0); @mi = min(arg0); @ma = max(arg0); "
    "@st = stats(arg0); @h = hist(arg0); @l = lhist(arg0, 0, 100, 10); @c = count(); }",
    "uprobe:a:f { @m[pid] = 1; delete(@m[pid]); delete(@m, pid); @k = has_key(@m, pid); "
    "@n = len(@m); zero(@m); clear(@m); print(@m, 5, 2); }",
    "uprobe:a:f { printf(\"%s %s %llx\\n\", usym(arg0), ustack(3), uaddr(\"main\")); "
    "@r = reg(\"rdi\"); time(\"%H\\n\"); @t = strftime(\"%H:%M\", nsecs); join(arg1); "
    "join(arg1, \",\"); cat(\"/proc/%d/status\", pid); @b = buf(arg0, 4); "
    "@c = strncmp(comm, \"ba\", 2); @d = strcontains(comm, \"sh\"); @l = strlen(comm); "
    "exit(); }",
    "uprobe:a:f { @[ustack(perf, 5)] = count(); @x = cpu + uid + gid + ppid + elapsed + rand; }",
    "uprobe:a:f { self->ts = nsecs; } uretprobe:a:f /self->ts/ { @ = nsecs - self->ts; }",
    "enum E { ONE = 1, TWO };\nuprobe:a:f /arg0 == TWO/ { @[ONE] = count(); }",
    "uprobe:a:f { $p = (struct S *)arg0; @ = $p->inner.v + sizeof(struct S) + &$p->inner; }\n"
    "struct I { int v; };\nstruct S { long x; struct I inner; };",
])
def test_valid_scripts_pass(text: str) -> None:
    ok(text, CheckOptions(params=("/tmp/x", "2")))


def test_unsafe_allows_system_and_signal() -> None:
    ok("sync uprobe:a:f { system(\"gcore %d\", pid); signal(\"SIGSTOP\"); signal(9); }",
       CheckOptions(unsafe=True))


def test_inferred_maps() -> None:
    result = ok(
        "uprobe:a:f { @[comm, pid] = count(); @l = lhist(arg0, 0, 100, 10); @s[ustack] = 1; "
        "@name[tid] = str(arg0); @t = (1, \"a\"); @inc++; }"
    )
    assert result.maps == (
        MapDecl("", 2, ("str", "int"), "count"),
        MapDecl("inc", 0, (), "int"),
        MapDecl("l", 0, (), "lhist", (0, 100, 10)),
        MapDecl("name", 1, ("int",), "str", value_type=ValueType("str")),
        MapDecl("s", 1, ("stack",), "int", value_type=ValueType("int")),
        MapDecl("t", 0, (), "tuple",
                value_type=ValueType("tuple", items=(ValueType("int"), ValueType("str")))),
    )


def test_map_written_after_it_is_read_in_file_order() -> None:
    ok("END { print(@m); } uprobe:a:f { @m = count(); }")


def test_syntax_errors_are_not_check_errors() -> None:
    with pytest.raises(UplangSyntaxError):
        parse("BEGIN {")


def test_offsetof_member_paths_and_errors() -> None:
    from uplang.planner import compile_script

    text = ("struct In { int8 a; int64 b; }; struct S { int32 x; struct In in; };\n"
            "BEGIN { printf(\"%d %d\\n\", offsetof(struct S, in.b), offsetof(struct S, x)); }")
    plan = compile_script(text)
    call = plan.clauses[0].body[0].expr
    assert call.args[1] == ast.Offsetof(ast.TypeRef("struct S"), ("in", "b"))
    with pytest.raises(UplangCheckError) as info:
        compile_script("struct S { int32 x; };\nBEGIN { @ = offsetof(struct S, y); }")
    assert "struct S has no member 'y'" in info.value.render()


def errors_of(text: str, options: CheckOptions | None = None) -> list[str]:
    try:
        check(parse(text, "t.up"), options or CheckOptions(), text)
    except UplangCheckError as exc:
        return [d.message for d in exc.diagnostics]
    return []


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


def _nested(opening: str, n: int, inner: str) -> str:
    return "BEGIN { $i = 0; " + opening * n + inner + " }" * n + " }"


def test_limits_are_checked_before_running() -> None:
    # Each of these used to fail only at run time (an empty message, or "internal: ...").
    assert errors_of('BEGIN { printf("%99999999999d\\n", 1); }') == [
        "printf(): field width 99999999999 in '%99999999999d' is beyond the limit of 65536"]
    assert errors_of('BEGIN { printf("%.70000s\\n", "a"); }') == [
        "printf(): precision 70000 in '%.70000s' is beyond the limit of 65536"]
    assert errors_of("config = { max_strlen = 999999999999 } BEGIN { }") == [
        "config 'max_strlen' is 999999999999, beyond its limit of 1048576"]
    assert errors_of(_nested("if (1) { ", 99, "$i++;")) == [
        "statements nested more than 48 levels deep (if, while, for, unroll, blocks): "
        "the limit of nesting"]
    for opening in ("while ($i < 1) { ", "unroll(2) { "):
        assert errors_of(_nested(opening, 17, "$i++;")) == [
            "loops nested more than 16 deep (while, for, unroll): the limit of loop nesting"]
        assert errors_of(_nested(opening, 16, "$i++;")) == []
    assert errors_of(_nested("if (1) { ", 47, "$i++;")) == []

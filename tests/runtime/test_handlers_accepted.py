"""Property: every script the checks accept compiles into handlers, and the handlers run.

Scripts are generated from the vocabulary tables themselves (uplang.vocab): a clause picks a
probe type, then only words its row allows there, each call built from the row's argument
kinds. So a new builtin, function, register or probe type is covered the moment it has a
row. A script the checks reject proves nothing and is discarded; one they accept must
compile (no CompileError: the checks and the compiler agree) and each clause must run once
against a fake hit without any exception (C semantics, maps, strings).
"""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ptrace.binding.linux_struct import user_regs_struct

from runtime.handlers.compiler import compile_plan
from runtime.handlers.emit import Emitter
from runtime.handlers.support import HandlerSupport
from runtime.maps import MapStore
from runtime.output.printf import PrintfFormat
from uplang.checks import CheckOptions
from uplang.diagnostics import UplangError
from uplang.planner import compile_script
from uplang.vocab.calls import BUILTINS, FUNCTIONS, MAX_ARG, USTACK_MODES, Word
from uplang.vocab.probetypes import PROBE_TYPES
from uplang.vocab.registers import REGISTERS

SPEC = {
    "symbol": "{name}:/bin/true:main",
    "usdt": "usdt:/bin/true:prov:name",
    "timer": "{name}:hz:99",
    "none": "{name}",
}
# Functions whose effect at the hit reaches outside the fake target: compiled, not run.
NOT_RUN = frozenset({"signal"})
INT_OPS = ("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=", "<", ">", "<=",
           ">=", "&&", "||")
CASTS = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")
INTS = st.sampled_from([0, 1, -1, 2, 7, 63, 64, 65, -64, 255, 1 << 31, (1 << 63) - 1,
                        -(1 << 63), (1 << 64) - 1, 0x7FFF_0000])


class Gen:
    """Draws the text of one clause for one probe type."""

    def __init__(self, draw: st.DrawFn, kind: str, stops_thread: bool) -> None:
        self.draw = draw
        self.kind = kind
        self.thread = stops_thread
        self.words = [w for w in (*BUILTINS, *FUNCTIONS) if kind in w.allowed]
        self.in_predicate = False

    def builtins(self, result: str) -> list[str]:
        names = [w.name for w in self.words if not w.function and w.result == result]
        if result == "int" and self.kind in ("uprobe", "usdt"):
            names += ["arg0", "arg1", "arg5", f"arg{MAX_ARG}"]
        return names

    def int_expr(self, depth: int = 0) -> str:
        d = self.draw
        choice = d(st.integers(0, 9 if depth < 3 else 2))
        if choice in (1, 9) and self.in_predicate:
            choice = 0
        if choice == 0:
            v = d(INTS)
            return str(v) if v >= 0 else f"({v})"
        if choice == 1:
            return "$i"
        if choice == 2:
            names = self.builtins("int")
            return d(st.sampled_from(names)) if names else "1"
        if choice == 3:
            return f"({self.int_expr(depth + 1)} {d(st.sampled_from(INT_OPS))} " \
                   f"{self.int_expr(depth + 1)})"
        if choice == 4:
            return f"{d(st.sampled_from(['-', '!', '~']))}({self.int_expr(depth + 1)})"
        if choice == 5:
            return f"(({d(st.sampled_from(CASTS))}){self.int_expr(depth + 1)})"
        if choice == 6:
            return f"({self.int_expr(depth + 1)} ? {self.int_expr(depth + 1)} : " \
                   f"{self.int_expr(depth + 1)})"
        if choice == 7:
            return d(st.sampled_from(["@i[1]", "@i[$i]", "@c[\"k\", 1]", "@n", "len(@i)",
                                      "has_key(@i, 2)", "$1", "$#", '("x" == "abc")',
                                      '(@s[1] != "a")', "sizeof(int32)", "sizeof(struct S)",
                                      "((struct S *)0x1000)->a", "((struct S *)0x1010)->p",
                                      "((struct S *)0x1000)->p[1]", "(1, 2).1", "E2",
                                      "*((uint16 *)0x1002)", "((struct S *)2)->a"]))
        if choice == 8:
            return self.call_of_kind("int", depth)
        return "self->t" if self.thread else "$i"

    def str_expr(self, depth: int = 0) -> str:
        d = self.draw
        choice = d(st.integers(0, 4))
        if choice == 0:
            return d(st.sampled_from(['"abc"', '""', '"a\\n"']))
        if choice == 1:
            return '"p"' if self.in_predicate else "$s"
        if choice == 2:
            names = self.builtins("str")
            return d(st.sampled_from(names)) if names else '"x"'
        if choice == 3:
            return d(st.sampled_from(["@s[1]", "$2", "((struct S *)0x1000)->n",
                                      "((struct S *)0x1000)->n", '(1 ? "a" : "b")']))
        return self.call_of_kind("str", depth)

    def call_of_kind(self, result: str, depth: int) -> str:
        rows = [w for w in self.words if w.function and w.result == result and not w.aggregation]
        if not rows or depth > 2:
            return "1" if result == "int" else '"y"'
        return self.call(self.draw(st.sampled_from(rows)), depth + 1)

    def value(self, depth: int) -> tuple[str, str]:
        if self.draw(st.booleans()):
            return self.int_expr(depth + 1), "%d"
        return self.str_expr(depth + 1), "%s"

    def arg(self, word: Word, kind: str, depth: int) -> str:
        d = self.draw
        if kind == "int":
            return self.int_expr(depth + 1)
        if kind == "const":
            if word.name == "hist":
                return str(d(st.integers(0, 5)))
            return str(d(st.integers(1, 20)))
        if kind == "str":
            return self.str_expr(depth + 1)
        if kind == "strlit":
            return {"uaddr": '"main"', "time": '"%H:%M\\n"', "strftime": '"%H:%M:%S"',
                    "join": '","'}.get(word.name, '"x"')
        if kind == "addr":
            return d(st.sampled_from([self.int_expr(depth + 1), self.str_expr(depth + 1)]))
        if kind == "value":
            return self.value(depth)[0]
        if kind == "map":
            return d(st.sampled_from(["@i", "@s", "@c", "@h"]))
        if kind == "elem":
            return "@i[" + self.int_expr(depth + 1) + "]"
        if kind == "key":
            return self.int_expr(depth + 1)
        if kind == "register":
            return f'"{d(st.sampled_from(sorted(REGISTERS)))}"'
        if kind == "signal":
            return d(st.sampled_from(['"SIGUSR1"', "10"]))
        if kind == "mode":
            return d(st.sampled_from([*USTACK_MODES, "3"]))
        raise AssertionError(f"argument kind {kind!r} of {word.name}() has no generator")

    def call(self, word: Word, depth: int) -> str:
        d = self.draw
        if word.name == "lhist":
            lo = d(st.integers(-50, 50))
            step = d(st.integers(1, 20))
            return f"lhist({self.int_expr(depth + 1)}, {lo}, {lo + step * d(st.integers(1, 9))}" \
                   f", {step})"
        if word.args[:1] == ("fmt",):
            values = [self.value(depth) for _ in range(d(st.integers(0, 3)))]
            fmt = " ".join(v[1] for v in values)
            return f'{word.name}("{fmt}"' + "".join(", " + v[0] for v in values) + ")"
        if word.name == "print" and d(st.booleans()):
            return f"print({d(st.sampled_from(['@i', '@c', '@h']))}, 3)"
        args: list[str] = []
        for spec in word.args:
            kind = spec.rstrip("?*")
            if spec.endswith("?") and not d(st.booleans()):
                break
            # Repeated keys would name a map with more keys than @i has.
            count = (d(st.integers(0, 2)) if kind not in ("key", "value") or word.args[0] == "fmt"
                     else 0) if spec.endswith("*") else 1
            args += [self.arg(word, kind, depth) for _ in range(count)]
        if word.name == "ustack" and args[:1] == ["3"] and len(args) > 1:
            args = args[:1]
        if word.name == "exit" and args:
            args = [str(d(st.integers(0, 255)))]
        if word.name == "sleep":
            args = ["0"]
        return f"{word.name}({', '.join(args)})"

    def statement(self, depth: int = 0) -> str:
        d = self.draw
        choice = d(st.integers(0, 9 if depth < 2 else 5))
        if choice == 0:
            return f"$i = {self.int_expr()};"
        if choice == 1:
            return f"@i[{self.int_expr()}] {d(st.sampled_from(['=', '+=', '<<=', '>>=', '%=']))} " \
                   f"{self.int_expr()};"
        if choice == 2:
            return f"@s[{self.int_expr()}] = {self.str_expr()};"
        if choice == 3:
            aggs = [w for w in self.words if w.aggregation]
            word = d(st.sampled_from(aggs))
            return f"@{word.name}[{self.int_expr()}] = {self.call(word, 1)};"
        if choice == 4:
            calls = [w for w in self.words if w.function and not w.aggregation]
            return self.call(d(st.sampled_from(calls)), 1) + ";"
        if choice == 5:
            extra = ["@k[ustack] = count();", "@k[ustack(2)] = count();",
                     "@k[ustack(perf)] = count();"] if self.thread else []
            return d(st.sampled_from(["$i++;", "@n--;", "++@i[2];", "$i += 3;",
                                      '$t = (1, "a"); printf("%d %s", $t.0, $t.1);',
                                      "print((1, 2));", "print($s);", "@u[usym(1)] = count();",
                                      "@t[1] = strftime(\"%H\", 1); print(@t[1]);",
                                      "delete(@i[1]);", "delete(@i, 1);", *extra]))
        if choice == 6:
            return f"if ({self.int_expr()}) {{ {self.statement(depth + 1)} }} else " \
                   f"{{ {self.statement(depth + 1)} }}"
        if choice == 7:
            return f"while ($i < 3) {{ $i++; {self.statement(depth + 1)} }}"
        if choice == 8:
            return f"for ($kv : @i) {{ $i = $kv.0 + $kv.1; {self.statement(depth + 1)} }}"
        return f"unroll(2) {{ {self.statement(depth + 1)} }}"


@st.composite
def scripts(draw: st.DrawFn) -> str:
    # Every map and variable the statements use is written first, with one kind each.
    setup = ("struct S { int a; char n[4]; long *p; };\nenum E { E1, E2 = 5 };\n"
             'BEGIN { @i[0] = 1; @s[0] = "a"; @c["k", 1] = count(); @h = hist(1); @n = 0; '
             "@count[0] = count(); @sum[0] = sum(1); @avg[0] = avg(1); @min[0] = min(1); "
             "@max[0] = max(1); @stats[0] = stats(1); @hist[0] = hist(1); "
             "@lhist[0] = lhist(1, 0, 10, 1); }")
    clauses = [setup]
    for _ in range(draw(st.integers(1, 3))):
        ptype = draw(st.sampled_from(PROBE_TYPES))
        gen = Gen(draw, ptype.name, ptype.stops_thread)
        body = ['$i = 1; $s = "s";']
        if ptype.stops_thread:
            body.append("self->t = 1;")
        body += [gen.statement() for _ in range(draw(st.integers(1, 4)))]
        gen.in_predicate = True
        pred = f"/{gen.int_expr()}/ " if draw(st.booleans()) else ""
        gen.in_predicate = False
        spec = SPEC[ptype.resolution].format(name=ptype.name)
        clauses.append(f"{spec} {pred}{{ {' '.join(body)} }}")
    return "\n".join(clauses)


class Regs(user_regs_struct):
    pass


class Context:
    """A hit as the handlers see it (docs/architecture.md "Session"); reads fail like a bad
    pointer, except one small readable area."""

    def __init__(self) -> None:
        self.pid, self.tid = 1, 1
        self.comm, self.cpu, self.nsecs, self.retval = "prog", 0, 5_000, (1 << 64) - 3
        self.regs = Regs()
        self.regs.rip, self.regs.rsp, self.regs.eflags = 0x401000, 0x7000, 0x246
        self.probe = type("P", (), {"label": "uprobe:/bin/true:main", "kind": "entry",
                                    "symbol": "main"})()
        self.deferred = 0

    def arg(self, n: int) -> int:
        return (0x1000 * n - 2) & ((1 << 64) - 1)

    def read(self, addr: int, n: int) -> bytes:
        if 0x1000 <= addr and addr + n <= 0x1100:
            return bytes(range(n))
        raise OSError(14, "Bad address")

    def read_str(self, addr: int, maxlen: int) -> bytes:
        return self.read(addr, min(maxlen, 8))

    def ustack(self, limit: int) -> list[int]:
        return [0x401005, 0x401100][:limit]

    def symbolize(self, addr: int) -> str | None:
        return {0x401005: "main+5"}.get(addr)

    def defer(self, fn: object) -> None:
        self.deferred += 1  # effects (printing, system, sleep) are not this test's subject


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scripts())
def test_every_accepted_script_compiles_and_runs(text: str) -> None:
    try:
        plan = compile_script(text, "gen.up", CheckOptions(unsafe=True, params=("5", "txt")))
    except UplangError:
        assume(False)
        return
    out = io.StringIO()
    support = HandlerSupport(MapStore(plan.maps), Emitter("text", out, out), stop=lambda: None,
                             params=plan.params, unsafe=True)
    handlers = compile_plan(plan, support, PrintfFormat.parse)
    if any(name in text for name in NOT_RUN):
        return
    for clause in plan.clauses:
        handlers[clause.index].handler(Context())


def test_the_generator_reaches_every_word_and_probe_type() -> None:
    """The property above is only as good as what it generates: every function row's
    argument kinds have a generator, every probe type a spec."""
    for word in FUNCTIONS:
        for spec in word.args:
            kind = spec.rstrip("?*")
            assert kind in ("int", "const", "str", "strlit", "addr", "value", "map", "elem",
                            "key", "register", "signal", "mode", "fmt"), (word.name, kind)
    for ptype in PROBE_TYPES:
        assert ptype.resolution in SPEC

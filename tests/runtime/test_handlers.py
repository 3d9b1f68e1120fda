"""The handler compiler against a fake hit context: C semantics, maps, control flow, effects.

Scripts are parsed by the real front end; the plan is assembled here (one probe per clause)
so that these tests exercise only the compiler and its support, with exact expectations.
"""

from __future__ import annotations

import io

import pytest

from runtime.handlers.compiler import compile_plan
from runtime.handlers.emit import Emitter
from runtime.handlers.support import HandlerSupport
from runtime.maps import MapStore
from runtime.output.printf import PrintfFormat
from uplang import ast
from uplang.parser import parse
from uplang.plan import Config, MemberLayout, Plan, PlanClause, PlanProbe, TypeLayout

KINDS = {"BEGIN": "begin", "END": "end"}


class FakeMemory:
    """Sparse target memory: reads outside the given blobs fail like a bad pointer."""

    def __init__(self, blobs: dict[int, bytes]) -> None:
        self.blobs = blobs

    def read(self, addr: int, n: int) -> bytes:
        for base, data in self.blobs.items():
            if base <= addr and addr + n <= base + len(data):
                return data[addr - base : addr - base + n]
        raise OSError(14, "Bad address")

    def read_str(self, addr: int, maxlen: int) -> bytes:
        for base, data in self.blobs.items():
            if base <= addr < base + len(data):
                chunk = data[addr - base : addr - base + maxlen]
                end = chunk.find(b"\0")
                return chunk if end < 0 else chunk[:end]
        raise OSError(14, "Bad address")


class FakeProbe:
    label = "uprobe:/bin/prog:work"
    kind = "entry"
    symbol = "work"


class FakeRegs:
    rax = 7
    rsp = 0x7000
    rip = 0x401000
    rbp = 0x7010
    eflags = 0x246
    orig_rax = 0xFFFFFFFFFFFFFFFF


class FakeContext:
    """HitContext's attributes (docs/architecture.md "Session")."""

    def __init__(self, args=(0,) * 8, mem=None, tid=101, pid=100, retval=0) -> None:
        self.args = args
        self.mem = mem or FakeMemory({})
        self.pid, self.tid = pid, tid
        self.retval = retval
        self.comm = "prog"
        self.cpu = 1
        self.nsecs = 5_000
        self.regs = FakeRegs()
        self.probe = FakeProbe()
        self.queue: list = []

    def arg(self, n: int) -> int:
        return self.args[n] & 0xFFFFFFFFFFFFFFFF

    def read(self, addr: int, n: int) -> bytes:
        return self.mem.read(addr, n)

    def read_str(self, addr: int, maxlen: int) -> bytes:
        return self.mem.read_str(addr, maxlen)

    def ustack(self, limit: int) -> list[int]:
        return [0x401005, 0x401100, 0xdead][:limit]

    def symbolize(self, addr: int) -> str | None:
        return {0x401005: "work+5", 0x401100: "main+16"}.get(addr)

    def defer(self, fn) -> None:
        self.queue.append(fn)

    def run_deferred(self) -> None:
        for fn in self.queue:
            fn()
        self.queue.clear()


class Harness:
    def __init__(self, text: str, params: tuple[str, ...] = (), types=(), config=()) -> None:
        prog = parse(text, "t.up")
        probes, clauses = [], []
        for i, c in enumerate(prog.clauses):
            spec = c.probes[0]
            probes.append(PlanProbe(i, i, KINDS.get(spec.provider, spec.provider), spec.raw))
            clauses.append(PlanClause(i, (i,), c.predicate, c.body, c.sync))
        self.plan = Plan(tuple(probes), tuple(clauses), types=tuple(types),
                         config=Config(tuple(config)), params=params)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.emitter = Emitter("text", self.out, self.err)
        self.store = MapStore()
        self.stopped = 0
        self.support = HandlerSupport(self.store, self.emitter, stop=self.stop, params=params)
        self.handlers = compile_plan(self.plan, self.support, PrintfFormat.parse)

    def stop(self) -> None:
        self.stopped += 1

    def hit(self, ctx: FakeContext | None = None, clause: int = 0) -> FakeContext:
        ctx = ctx or FakeContext()
        self.handlers[clause].handler(ctx)
        ctx.run_deferred()
        return ctx

    def printed(self, expr: str, ctx: FakeContext | None = None, fmt: str = "%d") -> str:
        h = Harness(f'uprobe:p:f {{ printf("{fmt}\\n", {expr}); }}', self.plan.params,
                    self.plan.types)
        h.hit(ctx)
        return h.out.getvalue()


def value_of(expr: str, ctx: FakeContext | None = None, fmt: str = "%lld", **kw) -> str:
    h = Harness(f'uprobe:p:f {{ printf("{fmt}", {expr}); }}', **kw)
    h.hit(ctx)
    return h.out.getvalue()


# ----------------------------------------------------------------------------- integers


@pytest.mark.parametrize(("expr", "want"), [
    ("7 / 2", "3"), ("-7 / 2", "-3"), ("7 / -2", "-3"), ("-7 % 3", "-1"), ("7 % -3", "1"),
    ("5 / 0", "0"), ("5 % 0", "5"), ("0x7fffffffffffffff + 1", "-9223372036854775808"),
    ("1 << 63", "-9223372036854775808"), ("-8 >> 1", "-4"), ("~0", "-1"), ("6 & 3", "2"),
    ("6 | 3", "7"), ("6 ^ 3", "5"), ("2 + 3 * 4", "14"), ("(2 + 3) * 4", "20"),
    ("!0", "1"), ("!5", "0"), ("-(3)", "-3"), ("3 > 2", "1"), ("3 <= 2", "0"),
    ("1 ? 10 : 20", "10"), ("0 ? 10 : 20", "20"), ("(uint8)257", "1"), ("(int8)255", "-1"),
    ("(uint16)0x12345", "9029"), ("(int32)0xffffffff", "-1"), ("(uint32)-1", "4294967295"),
    ("sizeof(int32)", "4"), ("sizeof(uint8)", "1"), ("1_000 + 017", "1015"),
])
def test_integer_semantics(expr: str, want: str) -> None:
    assert value_of(expr) == want


def test_short_circuit_does_not_evaluate_the_right_side() -> None:
    h = Harness("uprobe:p:f { $a = 0 && @x++; $b = 1 || @y++; printf(\"%d %d\", $a, $b); }")
    h.hit()
    assert h.out.getvalue() == "0 1"
    assert h.store.len("x") == 0 and h.store.len("y") == 0


def test_args_are_signed_and_retval_reads_rax() -> None:
    ctx = FakeContext(args=(-1, 2, 3, 4, 5, 6, 7, 8), retval=-5)
    assert value_of("arg0", ctx) == "-1"
    assert value_of("arg0 == -1", ctx) == "1"
    assert value_of("arg5 + arg6", ctx) == "13"
    assert value_of("retval", ctx) == "-5"
    assert value_of('reg("rax")', ctx) == "7"


def test_builtins_of_the_hit() -> None:
    ctx = FakeContext(pid=100, tid=101)
    h = Harness('uprobe:p:f { printf("%d %d %s %d %d %s %s\\n", pid, tid, comm, cpu, nsecs, '
                'func, probe); }')
    h.hit(ctx)
    assert h.out.getvalue() == "100 101 prog 1 5000 work uprobe:/bin/prog:work\n"


def test_elapsed_counts_from_the_session_start() -> None:
    h = Harness('uprobe:p:f { printf("%d", elapsed); }')
    h.support.start_ns = 1_000
    h.hit()
    assert h.out.getvalue() == "4000"


def test_ppid_uid_gid_come_from_proc() -> None:
    import os

    ctx = FakeContext(pid=os.getpid())
    assert value_of("ppid", ctx) == str(os.getppid())
    assert value_of("uid", ctx) == str(os.getuid())
    assert value_of("gid", ctx) == str(os.getgid())


def test_positional_parameters() -> None:
    assert value_of("$1 + $2", params=("40", "2")) == "42"
    assert value_of("$#", params=("a", "b", "c")) == "3"
    assert value_of("$3", params=("1",)) == "0"
    assert value_of("$1", params=("name",), fmt="%s") == "name"


def test_rand_is_32_bit_and_cpid_is_the_spawned_child() -> None:
    h = Harness('uprobe:p:f { printf("%d %d", rand >= 0 && rand < 4294967296, cpid); }')
    h.support.cpid = 4242
    h.hit()
    assert h.out.getvalue() == "1 4242"


# ----------------------------------------------------------------------------- memory


FOO = TypeLayout("struct", "Foo", 32, 8, (
    MemberLayout("a", 0, 4, ast.TypeRef("int32")),
    MemberLayout("b", 8, 8, ast.TypeRef("uint64")),
    MemberLayout("name", 16, 8, ast.TypeRef("char"), 8),
    MemberLayout("next", 24, 8, ast.TypeRef("struct Foo", 1)),
))


def _foo_memory() -> FakeMemory:
    first = (-3).to_bytes(4, "little", signed=True) + b"\0" * 4 + (99).to_bytes(8, "little")
    first += b"alpha\0\0\0" + (0x1020).to_bytes(8, "little")
    second = (11).to_bytes(4, "little") + b"\0" * 4 + (5).to_bytes(8, "little") + b"beta\0\0\0\0"
    second += (0).to_bytes(8, "little")
    return FakeMemory({0x1000: first + second, 0x3000: b"hello\0world\0"})


@pytest.mark.parametrize(("expr", "fmt", "want"), [
    ("((struct Foo *)arg0)->a", "%d", "-3"),
    ("((struct Foo *)arg0)->b", "%d", "99"),
    ("((struct Foo *)arg0)->name", "%s", "alpha"),
    ("((struct Foo *)arg0)->next->name", "%s", "beta"),
    ("((struct Foo *)arg0)->next->a", "%d", "11"),
    ("(*(struct Foo *)arg0).b", "%d", "99"),
    ("((struct Foo *)arg0)[1].a", "%d", "11"),
    ("*(int32 *)arg0", "%d", "-3"),
    ("*(uint8 *)(arg0 + 8)", "%d", "99"),
    ("((uint8 *)arg1)[1]", "%c", "e"),
    ("*arg1", "%lx", "6f77006f6c6c6568"),
    ("str(arg1)", "%s", "hello"),
    ("str(arg1, 3)", "%s", "hel"),
    ("str(arg1 + 6)", "%s", "world"),
    ("strlen(str(arg1))", "%d", "5"),
    ("buf(arg1, 7)", "%r", "hello\\x00w"),
    ("((struct Foo *)arg0 + 1)->a", "%d", "11"),
])
def test_memory_reads(expr: str, fmt: str, want: str) -> None:
    ctx = FakeContext(args=(0x1000, 0x3000), mem=_foo_memory())
    assert value_of(expr, ctx, fmt, types=(FOO,)) == want


def test_bad_pointer_gives_an_error_event_and_the_hit_goes_on() -> None:
    h = Harness('uprobe:p:f { printf("[%s]", str(arg0)); @n = count(); }')
    h.hit(FakeContext(args=(0x10,)))
    assert h.out.getvalue() == "[]"
    assert h.err.getvalue() == "ERROR: str(): failed to read a string at 0x10\n"
    assert h.store.get("n") == 1


def test_str_of_null_is_empty_without_an_error_event() -> None:
    h = Harness('uprobe:p:f { printf("[%s]", str(arg0)); @n = count(); }')
    h.hit(FakeContext(args=(0,)))
    assert h.out.getvalue() == "[]"
    assert h.err.getvalue() == ""
    assert h.store.get("n") == 1


def test_max_strlen_bounds_str() -> None:
    ctx = FakeContext(args=(0x3000,), mem=FakeMemory({0x3000: b"a" * 100 + b"\0"}))
    h = Harness('uprobe:p:f { printf("%s", str(arg0)); }')
    h.hit(ctx)
    assert h.out.getvalue() == "a" * 63


# ----------------------------------------------------------------------------- strings


@pytest.mark.parametrize(("expr", "want"), [
    ('"abc" == "abc"', "1"), ('"abc" != "abd"', "1"), ('strncmp("abcd", "abzz", 2)', "0"),
    ('strncmp("abcd", "abzz", 3)', "1"), ('strcontains("hello world", "o w")', "1"),
    ('strcontains("hello", "z")', "0"), ('comm == "prog"', "1"), ('strlen("four")', "4"),
])
def test_string_functions(expr: str, want: str) -> None:
    assert value_of(expr) == want


def test_strftime_and_time_format_from_the_wall_clock() -> None:
    import re

    h = Harness('uprobe:p:f { time("%Y\\n"); printf("%s\\n", strftime("%H:%M", nsecs)); }')
    h.hit(FakeContext())
    lines = h.out.getvalue().splitlines()
    assert re.fullmatch(r"20\d\d", lines[0]) and re.fullmatch(r"\d\d:\d\d", lines[1])


def test_ustack_and_usym_are_symbolised() -> None:
    h = Harness('uprobe:p:f { @[ustack] = count(); printf("%s|", usym(0x401005)); '
                'printf("%s|", usym(0x999)); print(ustack(1)); }')
    ctx = h.hit()
    assert h.out.getvalue() == "work|0x999|\n        work+5\n\n"
    h.emitter.final_maps(h.store)
    assert h.out.getvalue().endswith(
        "\n\n@[\n        work+5\n        main+16\n        0xdead\n]: 1\n")
    assert ctx.queue == []


@pytest.mark.parametrize(("name", "want"), [
    ("sp", 0x7000), ("rsp", 0x7000), ("ip", 0x401000), ("rip", 0x401000), ("bp", 0x7010),
    ("ax", 7), ("flags", 0x246), ("eflags", 0x246), ("orig_ax", -1), ("orig_rax", -1),
])
def test_every_register_spelling_the_checks_accept_reads_its_field(name, want) -> None:
    """reg("sp") and reg("ip") passed the checks and failed here: one table now."""
    assert value_of(f'reg("{name}")') == str(want)


def test_ustack_with_a_mode_prints_in_that_mode() -> None:
    """ustack(perf) and ustack(perf, 2) passed the checks and failed to compile."""
    h = Harness('uprobe:p:f { print(ustack(perf)); print(ustack(perf, 2)); '
                'print(ustack(raw, 1)); print(ustack(bpftrace, 1)); }')
    h.hit()
    configured = Harness("uprobe:p:f { print(ustack); print(ustack(2)); }",
                         config=(("stack_mode", "perf"),))
    configured.support.stack_mode = "perf"
    configured.hit()
    perf = ("\n\t401005 work+5 ([unknown])\n\t401100 main+16 ([unknown])\n"
            "\tdead 0xdead ([unknown])\n\n")
    perf_two = "\n\t401005 work+5 ([unknown])\n\t401100 main+16 ([unknown])\n\n"
    assert h.out.getvalue() == perf + perf_two + "\n401005\n\n" + "\n        work+5\n\n"
    assert configured.out.getvalue() == perf + perf_two


@pytest.mark.parametrize(("expr", "want"), [
    ("1 << $n", "-9223372036854775808"),     # -1 & 63 == 63
    ("-8 >> $n", "-1"),
    ("(uint64)-8 >> $n", "1"),               # an unsigned value shifts logically
    ("$n << 64", "-1"),                      # counts are masked: << 64 is << 0
    ("5 >> 65", "2"),
    ("1 << 0x10000000000", "1"),             # a huge count neither hangs nor raises
])
def test_shift_counts_are_masked_as_bpf_does(expr, want) -> None:
    """`$x >> $y` with a negative count ended the session ("negative shift count")."""
    h = Harness(f'uprobe:p:f {{ $n = -1; printf("%lld", {expr}); }}')
    h.hit()
    assert h.out.getvalue() == want


def test_join_reads_an_argv_array() -> None:
    ptrs = b"".join(a.to_bytes(8, "little") for a in (0x3000, 0x3006, 0))
    ctx = FakeContext(args=(0x5000,), mem=FakeMemory({0x5000: ptrs, 0x3000: b"hello\0world\0"}))
    h = Harness('uprobe:p:f { join(arg0); join(arg0, ","); }')
    h.hit(ctx)
    assert h.out.getvalue() == "hello world\nhello,world\n"


# ----------------------------------------------------------------------------- maps


def test_aggregations_and_the_final_print() -> None:
    h = Harness("uprobe:p:f { @c[arg0 & 1] = count(); @s = sum(arg0); @mn = min(arg0); "
                "@mx = max(arg0); @a = avg(arg0); @st = stats(arg0); @h = hist(arg0); "
                "@l = lhist(arg0, 0, 10, 5); @last = arg0; @name[comm, arg0 & 1] = count(); }")
    for v in (-1, 2, 3, 7, 20):
        h.hit(FakeContext(args=(v,)))
    h.emitter.final_maps(h.store)
    assert h.out.getvalue() == (
        "\n\n"
        "@a: 6\n\n"
        "@c[0]: 2\n@c[1]: 3\n"
        "@h: \n"
        "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "[0]                    0 |                                                    |\n"
        "[1]                    0 |                                                    |\n"
        "[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "[8, 16)                0 |                                                    |\n"
        "[16, 32)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "\n"
        "@l: \n"
        "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "[0, 5)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[5, 10)                1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "[10, ...)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "\n"
        "@last: 20\n"
        "@mn: -1\n"
        "@mx: 20\n"
        "@name[prog, 0]: 2\n@name[prog, 1]: 3\n"
        "@s: 31\n"
        "@st: { .count = 5, .average = 6, .total = 31 }\n\n"
    )


def test_map_functions_and_compound_assignment() -> None:
    h = Harness("uprobe:p:f { @m[1] = 10; @m[2] = 20; @m[3] = 30; @m[2] += 5; @m[1]++; "
                "--@m[3]; delete(@m[1]); printf(\"%d %d %d %d \", has_key(@m, 1), "
                "has_key(@m, 2), len(@m), @m[2]); @m[9] <<= 1; printf(\"%d\", @missing[5]); }"
                "END { zero(@m); print(@m); clear(@m); print(len(@m)); }")
    h.hit()
    assert h.out.getvalue() == "0 1 2 25 0"
    h.hit(clause=1)
    assert h.out.getvalue() == "0 1 2 25 0@m[2]: 0\n@m[3]: 0\n@m[9]: 0\n0\n"


def test_print_map_is_a_snapshot_of_the_hit() -> None:
    h = Harness("uprobe:p:f { @c = count(); print(@c); @c = count(); }")
    ctx = FakeContext()
    h.handlers[0].handler(ctx)
    h.handlers[0].handler(ctx)
    ctx.run_deferred()
    assert h.out.getvalue() == "@c: 1\n@c: 3\n"


def test_print_top_and_div() -> None:
    h = Harness("uprobe:p:f { @[1] = 100; @[2] = 300; @[3] = 200; print(@, 2, 10); }")
    h.hit()
    assert h.out.getvalue() == "@[3]: 20\n@[2]: 30\n"


# ----------------------------------------------------------------------------- variables, flow


def test_thread_locals_are_per_thread_and_dropped_on_exit() -> None:
    h = Harness("uprobe:p:f { self->n++; printf(\"%d \", self->n); }")
    h.hit(FakeContext(tid=1))
    h.hit(FakeContext(tid=1))
    h.hit(FakeContext(tid=2))
    h.support.thread_exited(0, 1)
    h.hit(FakeContext(tid=1))
    assert h.out.getvalue() == "1 2 1 1 "


def test_thread_local_types_flow_between_clauses() -> None:
    h = Harness('uprobe:p:f { self->s = str(arg0); } uprobe:p:g /self->s == "hello"/ '
                '{ printf("%s!", self->s); delete(self->s); }')
    ctx = FakeContext(args=(0x3000,), mem=_foo_memory())
    h.hit(ctx, 0)
    h.hit(ctx, 1)
    h.hit(ctx, 1)
    assert h.out.getvalue() == "hello!"


def test_control_flow() -> None:
    h = Harness("""uprobe:p:f {
        $i = 0; $sum = 0;
        while ($i < 10) { $i++; if ($i == 3) { continue; } if ($i > 6) { break; } $sum += $i; }
        unroll(3) { $sum = $sum * 2; }
        if ($sum > 1000) { printf("big\\n"); } else if ($sum > 100) { printf("mid %d\\n", $sum); }
        else { printf("small\\n"); }
        @m["a"] = 1; @m["b"] = 2;
        for ($kv : @m) { printf("%s=%d ", $kv.0, $kv.1); }
        $t = (1, "two"); printf("%d %s\\n", $t.0, $t.1);
        return;
        printf("not reached\\n");
    }""")
    h.hit()
    assert h.out.getvalue() == "mid 144\na=1 b=2 1 two\n"


def test_while_is_capped_with_an_error_event() -> None:
    h = Harness("uprobe:p:f { $i = 0; while (1) { $i++; } printf(\"%d\", $i); }",
                config=(("max_loop_iterations", 50),))
    h.hit()
    assert h.out.getvalue() == "50"
    assert "50 iterations" in h.err.getvalue()


def test_predicate_filters() -> None:
    h = Harness("uprobe:p:f /arg0 > 5 && comm == \"prog\"/ { @n = count(); }")
    for v in range(10):
        h.hit(FakeContext(args=(v,)))
    assert h.store.get("n") == 4


def test_exit_requests_a_stop_and_effects_are_deferred() -> None:
    h = Harness('uprobe:p:f { printf("x"); exit(); }')
    ctx = FakeContext()
    h.handlers[0].handler(ctx)
    assert h.stopped == 1 and h.out.getvalue() == "" and len(ctx.queue) == 1
    ctx.run_deferred()
    assert h.out.getvalue() == "x"


def test_system_cat_and_sleep_run_deferred(tmp_path) -> None:
    f = tmp_path / "note.txt"
    f.write_text("from a file\n")
    h = Harness(f'uprobe:p:f {{ system("echo %d", 42); cat("{f}"); sleep(1); }}')
    ctx = FakeContext()
    h.handlers[0].handler(ctx)
    assert h.out.getvalue() == "" and len(ctx.queue) == 3
    ctx.run_deferred()
    assert h.out.getvalue() == "42\nfrom a file\n"


def test_signal_is_sent_to_the_process() -> None:
    import os
    import signal
    import subprocess

    child = subprocess.Popen(["sleep", "30"])
    try:
        h = Harness('uprobe:p:f { signal("SIGTERM"); }')
        h.hit(FakeContext(pid=child.pid))
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()


def test_generated_code_is_compiled_once_and_plain_python() -> None:
    h = Harness("uprobe:p:f /arg0/ { @x[tid] = count(); }")
    src = h.handlers[0].source
    assert src.startswith("def clause_0(_ctx):")
    assert "_agg(_m_x, (_ctx.tid, ), 'count', 1)" in src


def test_no_hit_runs_after_exit_but_end_does() -> None:
    h = Harness('uprobe:p:f { @n = count(); exit(); } END { printf("end %d", @n); }')
    h.hit()
    h.hit()
    h.hit(clause=1)
    assert h.store.get("n") == 1 and h.out.getvalue() == "end 1"


def test_thread_locals_of_dead_threads_are_pruned() -> None:
    import os

    h = Harness("uprobe:p:f { self->x = 1; }")
    h.support.tls_prune_at = 3
    for dead in (10**9, 10**9 + 1, 10**9 + 2):  # no such threads
        h.hit(FakeContext(pid=os.getpid(), tid=dead))
    h.hit(FakeContext(pid=os.getpid(), tid=os.getpid()))
    assert set(h.support.tls) == {os.getpid()}


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


def test_types_of_thread_locals_and_map_values_come_from_the_plan() -> None:
    """A clause that reads `self->s` and a tuple map before the clause that assigns them
    (in generation order) still knows they hold strings: the checks' types travel in the
    plan (Plan.thread_locals, MapDecl.value_type) and the compiler runs once."""
    from uplang.checks import CheckOptions
    from uplang.planner import compile_script

    plan = compile_script(
        'uretprobe:p:f { printf("%d %d\\n", self->s[1], @t[1].1[0]); }\n'
        'uprobe:p:f { self->s = "abc"; @t[1] = (7, "xy"); }', "t.up", CheckOptions())
    assert dict(plan.thread_locals)["s"].kind == "str"
    out = io.StringIO()
    store = MapStore(plan.maps)
    support = HandlerSupport(store, Emitter("text", out, out), stop=lambda: None)
    handlers = compile_plan(plan, support, PrintfFormat.parse)
    ctx = FakeContext()
    handlers[1].handler(ctx)
    handlers[0].handler(ctx)
    ctx.run_deferred()
    assert out.getvalue() == f"{ord('b')} {ord('x')}\n"

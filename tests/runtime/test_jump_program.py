"""The in-target program of the jump path, run for real without ptrace.

A small C harness (tests/programs/jump_harness.c) maps the compiled bytes r-x and the
shared area (a memfd) and calls the entries from several threads with frames, as the
trampolines will. The trap path's compiled handlers, run on the same inputs, are the
oracle: the merged maps must print byte-identically, the drained events likewise.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from runtime.aggregations import hist_index
from runtime.handlers.compiler import compile_plan
from runtime.handlers.emit import Emitter
from runtime.handlers.support import HandlerSupport
from runtime.jump import layout as L
from runtime.jump.program import build_program
from runtime.jump.reader import JumpReader, compile_user_side
from runtime.maps import MapStore
from runtime.output.printf import PrintfFormat
from runtime.output.text import map_text
from uplang.planner import compile_script

AGG_SCRIPT = """uprobe:/bin/true:f {
  @c = count(); @t[arg1] = count(); @s = sum(arg0); @h = hist(arg0 & 1023);
  @mn = min(arg2 - 500); @mx = max(arg2); @a = avg(arg0); @st = stats(arg0 % 7);
  @l = lhist(arg0 % 100, 0, 100, 25); @k[arg1, arg0 % 3] = sum(1);
  @h2 = hist(arg0 % 300, 2);
  $v = arg0 * 2 + 1; @last[arg1] = $v; @ge[arg1] += arg0 > 10 ? 1 : 0;
  if (arg0 % 5 == 0) { @five = count(); }
}"""


class Run:
    """One program, one shared area, the harness started on it."""

    def __init__(self, builder, script: str, *, drop: bool = False, ring: int = 1 << 12,
                 tracer_pid: int | None = None) -> None:
        self.exe = builder.build("jump_harness.c", "-O2", "-pthread")
        self.plan = compile_script(script)
        self.prog = build_program(self.plan, drop=drop, ring_records=ring)
        self.fd = os.memfd_create("jump-test")
        os.ftruncate(self.fd, self.prog.shm_size)
        self.mm = mmap.mmap(self.fd, self.prog.shm_size)
        with memoryview(self.mm) as view:
            self.prog.init_shm(view, tracer_pid)
            in_target = tuple(self.prog.program.clause_bits)
            self.prog.add_site(view, 0, in_target)
            self.prog.add_site(view, 1, in_target)
        self.code = Path(self.exe).parent / f"code-{os.getpid()}-{id(self)}.bin"
        self.code.write_bytes(self.prog.code)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.store = MapStore(self.plan.maps,
                              max_keys=int(self.plan.config.get("max_map_keys", 4096) or 0))
        self.support = HandlerSupport(self.store, Emitter("text", self.out, self.err),
                                      stop=lambda: None)
        user = compile_user_side(self.prog, self.support, PrintfFormat.parse)
        self.reader = JumpReader(self.prog, self.mm, self.store, user)

    def start(self, mode: str, threads: int, calls: int, reaper) -> subprocess.Popen:
        e = self.prog.entries
        argv = [str(self.exe), str(self.code), str(self.fd), str(e["jp_hit"]),
                str(e["jp_ret_enter"]), str(e["jp_ret_exit"]), mode, str(threads), str(calls)]
        p = subprocess.Popen(argv, pass_fds=(self.fd,), stdout=subprocess.PIPE, text=True)
        reaper.add(p.pid)
        return p

    def run(self, mode: str, threads: int, calls: int, reaper) -> str:
        p = self.start(mode, threads, calls, reaper)
        out, _ = p.communicate()
        assert p.returncode == 0, out
        return out

    def drain_while(self, p: subprocess.Popen) -> str:
        """Drains on a thread of ours while the harness runs, as the tracer's loop will."""
        done = threading.Event()

        def loop() -> None:
            while not done.is_set():
                if not self.reader.drain():
                    done.wait(0.0005)
            self.reader.drain()

        t = threading.Thread(target=loop)
        t.start()
        out, _ = p.communicate()
        done.set()
        t.join()
        return out

    def close(self) -> None:
        self.reader.release()
        self.mm.close()
        os.close(self.fd)
        self.code.unlink()

    def maps_text(self) -> str:
        self.reader.merge_maps()
        return "".join(map_text(m) for m in self.store.maps())


def oracle(script: str, inputs) -> tuple[str, str]:
    """The trap path's handlers over the same hits: (maps printed, output)."""
    plan = compile_script(script)
    out, err = io.StringIO(), io.StringIO()
    store = MapStore(plan.maps, max_keys=int(plan.config.get("max_map_keys", 4096) or 0))
    support = HandlerSupport(store, Emitter("text", out, err), stop=lambda: None)
    handlers = compile_plan(plan, support, PrintfFormat.parse)

    class Ctx:
        pid, tid, comm, cpu, nsecs, probe, regs = 1, 2, "x", 0, 0, None, None

        def __init__(self, args, retval=0):
            self.args, self.retval = args, retval

        def arg(self, n):
            return self.args[n]

        def defer(self, fn):
            fn()

    for args in inputs:
        for h in handlers.values():
            h.handler(Ctx(args, args[0]))
    return "".join(map_text(m) for m in store.maps()), out.getvalue()


def test_code_is_self_contained_integer_only(builder):
    prog = build_program(compile_script(AGG_SCRIPT + """
uretprobe:/bin/true:f { @r = hist(retval); printf("%d %s\\n", retval, str(retval)); }"""))
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    md.detail = True
    insns = list(md.disasm(prog.code, 0))
    assert sum(i.size for i in insns) == len(prog.code)  # decodes whole: no data inside
    for ins in insns:
        names = {ins.reg_name(r) for r in ins.regs_read + ins.regs_write}
        names |= {ins.reg_name(op.reg) for op in ins.operands if op.type == 1}
        vector = {n for n in names if n and n.startswith(("xmm", "ymm", "zmm", "mm", "st"))}
        assert not vector, f"{ins.mnemonic} {ins.op_str}"
        assert ins.mnemonic not in ("call", "int3", "ud2"), f"{ins.mnemonic} {ins.op_str}"
    assert set(prog.entries) == {"jp_hit", "jp_ret_enter", "jp_ret_exit"}
    assert 8 < prog.max_stack < 1024


def test_maps_match_the_trap_path(builder, reaper):
    run = Run(builder, AGG_SCRIPT)
    try:
        run.run("hit", 2, 3000, reaper)
        got = run.maps_text()
    finally:
        run.close()
    want, _ = oracle(AGG_SCRIPT, [(i, t, 3 * i) for t in range(2) for i in range(3000)])
    assert got == want


EXPR_SCRIPT = """uprobe:/bin/true:f {
  $a = arg0 - 1000; $b = arg0 % 7 - 3;
  @div[arg0 % 5] = sum($a / $b); @mod[arg0 % 5] = sum($a % $b);
  @shl = sum(($a << (arg0 % 70)) >> 3); @neg = sum(-$a * 3 ^ 0x5555);
  @cmp[$a < 0, $b >= 0, $a == $b] = count();
  @tern = sum($b ? $a / 2 : -1); @not = sum(!$a + ~$b);
  @logic[($a > 0 && $b > 0) || arg0 == 17] = count();
  @cast[(int8)arg0, (uint8)arg0 > 100, (int16)($a * 300)] = count();
  @c32 = sum((int32)($a * 100000000)); @u16 = sum((uint16)$a);
  $v = 5; $v += $b; $v *= 3; @var = sum($v);
  self->n++; self->s += $a; @tl = sum(self->n * 2 + self->s % 11);
  @int[arg0 % 3] = $a; @acc[arg0 % 4] += $b; @inc[arg0 % 2]++;
  if ($b > 0) { @pos = count(); } else { @nonpos = count(); @mn = min($a); @mx = max($b); }
  @big = sum(0x7fffffffffffffff + arg0); @minover = sum((-0x7fffffffffffffff - 1) / ($b == -1 ? -1 : 1));
  @rd = sum(@inc[0] + @int[1]);
}"""


def test_expressions_as_the_trap_path(builder, reaper):
    run = Run(builder, EXPR_SCRIPT)
    try:
        assert run.prog.in_target(0), run.prog.reason(0)
        run.run("hit", 1, 2000, reaper)
        got = run.maps_text()
    finally:
        run.close()
    want, _ = oracle(EXPR_SCRIPT, [(i, 0, 3 * i) for i in range(2000)])
    assert got == want
    assert got.count("\n@") >= 20  # every map printed


def test_eight_threads_million_calls_exact(builder, reaper):
    script = "uprobe:/bin/true:f { @c = count(); @s = sum(arg0); @h = hist(arg0 & 1023); " \
             "@t[arg1] = count(); }"
    run = Run(builder, script)
    n = 1_000_000
    try:
        run.run("hit", 8, n, reaper)
        run.reader.merge_maps()
        got = {m.name: m.entries for m in run.store.maps()}
    finally:
        run.close()
    assert got["c"][()].count == 8 * n
    assert got["s"][()].total == 8 * n * (n - 1) // 2
    want = [0] * len(got["h"][()].buckets)
    for v in range(1024):
        want[hist_index(v)] += 8 * (n // 1024 + (1 if v < n % 1024 else 0))
    assert got["h"][()].buckets == want
    assert {k: s.count for k, s in got["t"].items()} == {(t,): n for t in range(8)}


def test_return_probes_restore_and_count(builder, reaper):
    script = "uretprobe:/bin/true:f { @r = hist(retval); @n = count(); }"
    run = Run(builder, script)
    try:
        run.run("ret", 4, 20000, reaper)  # the harness checks the slot and return address
        got = run.maps_text()
        assert run.reader.counters["return_without_entry"] == 0
    finally:
        run.close()
    want, _ = oracle(script, [(i,) for _ in range(4) for i in range(20000)])
    assert got == want


def test_max_map_keys_as_the_trap_path(builder, reaper):
    script = "config = { max_map_keys = 8 } uprobe:/bin/true:f { @t[arg0 % 100] = count(); }"
    run = Run(builder, script)
    try:
        run.run("hit", 1, 1000, reaper)
        got = run.maps_text()
        dropped = dict(run.store.dropped)
    finally:
        run.close()
    want, _ = oracle(script, [(i, 0, 3 * i) for i in range(1000)])
    assert got == want
    assert dropped == {"t": 1000 - 8 * 10}


def test_latency_idiom_with_a_map_of_start_times(builder, reaper):
    script = ("uprobe:/bin/true:f { @start[tid] = nsecs; } "
              "uretprobe:/bin/true:f /@start[tid]/ { @lat = hist(nsecs - @start[tid]); "
              "@n = count(); delete(@start[tid]); }")
    run = Run(builder, script)
    try:
        assert run.prog.in_target(0) and run.prog.in_target(1)
        run.run("ret", 3, 5000, reaper)
        run.reader.merge_maps()
        lat = run.store.map("lat").entries[()]
        assert sum(lat.buckets) == 3 * 5000
        assert lat.buckets[0] == 0  # no negative latency: one monotonic clock
        assert run.store.map("n").entries[()].count == 3 * 5000
        assert run.store.map("start").entries == {}  # every key deleted again
    finally:
        run.close()


def test_exit_stops_every_later_hit_at_once(builder, reaper):
    script = "uprobe:/bin/true:f { @n = count(); if (arg0 == 99) { exit(); } @after = count(); }"
    run = Run(builder, script)
    try:
        run.drain_while(run.start("hit", 1, 1000, reaper))
        text = run.maps_text()
    finally:
        run.close()
    want, _ = oracle(script, [(i, 0, 0) for i in range(1000)])
    assert text == want == "@after: 100\n@n: 100\n"
    assert run.support.stopped[0]


def test_nsecs_is_clock_monotonic(builder, reaper):
    script = "uprobe:/bin/true:f { @lo = min(nsecs); @hi = max(nsecs); @e = min(elapsed); }"
    run = Run(builder, script)
    try:
        base = run.prog.clock_params()[3]
        before = time.monotonic_ns()
        run.run("hit", 2, 1000, reaper)
        after = time.monotonic_ns()
        run.reader.merge_maps()
        lo, hi = run.store.get("lo"), run.store.get("hi")
        elapsed = run.store.get("e")
    finally:
        run.close()
    # the TSC scaled by the tracer's calibration: within a few per cent of the time
    # since calibration, plus a few milliseconds of calibration error
    slack = (after - base) // 20 + 5_000_000
    assert before - slack <= lo <= hi <= after + slack
    assert 0 <= elapsed <= after - base + slack


def test_time_shows_the_hit(builder, reaper):
    script = 'uprobe:/bin/true:f /arg0 == 0/ { time("%H:%M:%S\\n"); }'
    run = Run(builder, script)
    try:
        run.run("hit", 1, 10, reaper)
        hit_ns = time.time_ns()
        time.sleep(1.1)  # the drain runs a second later: time() must not show the drain
        run.reader.drain()
        out = run.out.getvalue()
    finally:
        run.close()
    from runtime.output.timefmt import time_text
    assert out in (time_text("%H:%M:%S\n", hit_ns),
                   time_text("%H:%M:%S\n", hit_ns - 1_000_000_000))


def test_frames_left_by_longjmp_are_dropped(builder, reaper):
    run = Run(builder, "uretprobe:/bin/true:f { @r = count(); }")
    try:
        run.run("longjmp", 2, 1000, reaper)  # checks every returned address itself
        text = run.maps_text()
        assert run.reader.counters["return_without_entry"] == 0
    finally:
        run.close()
    assert text == "@r: 1000\n"  # the 1000 frames that returned, not the abandoned ones


def test_tail_calls_run_both_return_probes(builder, reaper):
    run = Run(builder, "uretprobe:/bin/true:f { @r = count(); }")
    try:
        run.run("tail", 2, 1000, reaper)
        text = run.maps_text()
    finally:
        run.close()
    assert text == "@r: 4000\n"


def test_events_in_order_with_strings(builder, reaper):
    script = 'uprobe:/bin/true:f { @n[arg1] = count(); ' \
             'printf("%d %d %s|%s|%s\\n", arg1, arg0, str(arg3), str(arg4), str(arg5)); }'
    run = Run(builder, script, ring=256)  # small: writers wait for the drain
    try:
        out = run.drain_while(run.start("hit", 4, 20000, reaper))
        assert "failures=0" in out
        lines = run.out.getvalue().splitlines()
        errors = run.err.getvalue().splitlines()
        assert run.reader.lost == 0
    finally:
        run.close()
    assert len(lines) == 4 * 20000
    # the bad pointer is reported as the trap path reports it, once per hit
    assert errors == ["ERROR: str(): failed to read a string at 0x1"] * (4 * 20000)
    seen: dict[int, int] = {}
    for line in lines:
        nums, strs = line.split(" ", 2)[:2], line.split(" ", 2)[2]
        t, i = int(nums[0]), int(nums[1])
        assert i == seen.get(t, -1) + 1  # every line, per-thread order kept
        seen[t] = i
        assert strs == f"thread-{t}||"  # NULL and a bad pointer read as "" (no crash)


def test_two_million_printf_lines_from_four_threads(builder, reaper):
    script = 'uprobe:/bin/true:f { printf("%d %d\\n", arg1, arg0); }'
    run = Run(builder, script, ring=1 << 12)  # writers wait for the drain, often
    n = 500_000
    try:
        run.drain_while(run.start("hit", 4, n, reaper))
        assert run.reader.lost == 0
        text = run.out.getvalue()
    finally:
        run.close()
    nxt = [0] * 4
    lines = 0
    for line in text.splitlines():
        t, i = map(int, line.split())
        assert i == nxt[t]  # every line, in each thread's order
        nxt[t] += 1
        lines += 1
    assert lines == 4 * n and nxt == [n] * 4


def test_drop_mode_counts_lost_events(builder, reaper):
    script = 'uprobe:/bin/true:f { printf("%d\\n", arg0); }'
    run = Run(builder, script, drop=True, ring=64)
    try:
        p = run.start("hit", 2, 50000, reaper)
        run.drain_while(p)
        assert p.returncode == 0
        printed = len(run.out.getvalue().splitlines())
        assert printed + run.reader.lost == 2 * 50000
        assert run.reader.lost > 0
    finally:
        run.close()


def test_full_ring_does_not_block_when_the_tracer_is_gone(builder, reaper):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer exists: "the tracer" died
    script = 'uprobe:/bin/true:f { printf("%d\\n", arg0); }'
    run = Run(builder, script, ring=64, tracer_pid=gone.pid)
    try:
        run.run("hit", 2, 1000, reaper)  # nobody drains: must still finish
        assert run.reader.lost == 2 * 1000 - 64
        assert run.reader.drain() == 64
    finally:
        run.close()


@pytest.mark.parametrize(("script", "reason"), [
    ("uprobe:/bin/true:f { @[ustack] = count(); }", "ustack"),
    ("uprobe:/bin/true:f { printf(\"%s\\n\", func); }", "func"),
    ("sync uprobe:/bin/true:f { @c = count(); }", "sync"),
    ("uprobe:/bin/true:f { @x = *(int32 *)arg0; }", "dereferences memory"),
    ("usdt:/bin/true:p:n { @c = count(); }", "usdt"),
    ("uprobe:/bin/true:f { @m = min(arg0); } interval:s:1 { print(@m); clear(@m); }",
     "cleared on the user side"),
    ("uprobe:/bin/true:g { @x = @s[tid]; } uprobe:/bin/true:f { @s[tid] = arg0; } "
     "END { @s[1] = 5; }", "also written on the user side"),
    ("uprobe:/bin/true:f { @c = count(); } uprobe:/bin/true:g { printf(\"%d %s\\n\", @c, func); }",
     "also read by a clause on the trap path"),
    ("uprobe:/bin/true:f { @c = count(); print(@c); }", "print(@c) at a hit"),
])
def test_clauses_that_keep_the_trap_path_say_why(script, reason):
    prog = build_program(compile_script(script))
    assert reason in (prog.reason(0) or "")
    assert not prog.in_target(0)


def test_effects_inside_if_as_the_trap_path(builder, reaper):
    script = """uprobe:/bin/true:f {
      if (arg0 % 3 == 0) { printf("three %d\\n", arg0); @three = count(); }
      else { @odd[arg0 % 2] = count();
             if (arg0 % 5 == 0) { printf("five %d %x\\n", arg0, arg2); } else { @other = sum(arg0); } }
      printf("end %d\\n", arg0);
    }"""
    run = Run(builder, script)
    try:
        assert run.prog.in_target(0), run.prog.reason(0)
        run.drain_while(run.start("hit", 1, 300, reaper))
        got_maps, got_out = run.maps_text(), run.out.getvalue()
    finally:
        run.close()
    want_maps, want_out = oracle(script, [(i, 0, 3 * i) for i in range(300)])
    assert (got_maps, got_out) == (want_maps, want_out)
    assert "five 5 f" in got_out


def test_buffers_as_the_trap_path(builder, reaper):
    script = 'uprobe:/bin/true:f { printf("%r|%rx|%r\\n", buf(arg3, 4), buf(arg3, 2), buf(arg5, 3)); }'
    run = Run(builder, script)
    try:
        assert run.prog.in_target(0), run.prog.reason(0)
        run.drain_while(run.start("hit", 1, 10, reaper))
        out, err = run.out.getvalue(), run.err.getvalue()
    finally:
        run.close()
    assert out == "thre|\\x74\\x68|\n" * 10
    assert err == "ERROR: buf(): failed to read 3 bytes at 0x1\n" * 10


def test_comm_is_the_threads_name_at_the_hit(builder, reaper):
    script = ('uprobe:/bin/true:f { @[comm] = count(); @s[comm, arg1] = sum(arg0); '
              'printf("%s\\n", comm); }')
    run = Run(builder, script)
    try:
        assert run.prog.in_target(0)
        assert run.prog.layout.maps[""].key_kinds == ("comm",)  # kept in the target
        run.drain_while(run.start("hit", 2, 300, reaper))
        text = run.maps_text()
        lines = set(run.out.getvalue().splitlines())
    finally:
        run.close()
    # names the threads gave themselves
    assert text == ("@[jw-0]: 300\n@[jw-1]: 300\n"
                    "@s[jw-0, 0]: 44850\n@s[jw-1, 1]: 44850\n")
    assert lines == {"jw-0", "jw-1"}


def test_string_keys_run_on_the_user_side(builder, reaper):
    script = 'uprobe:/bin/true:f { @names[str(arg3)] = count(); @n = count(); }'
    run = Run(builder, script)
    try:
        assert run.prog.in_target(0)
        run.drain_while(run.start("hit", 3, 500, reaper))
        text = run.maps_text()
    finally:
        run.close()
    assert text == "@n: 1500\n" + "".join(f"@names[thread-{t}]: 500\n" for t in range(3))


def test_a_clause_with_trap_sites_takes_its_readers_along():
    script = ("uprobe:/bin/true:f { @start[tid] = nsecs; @n = count(); } "
              "uretprobe:/bin/true:f { @lat = hist(nsecs - @start[tid]); } "
              "uprobe:/bin/true:g { @other = count(); }")
    prog = build_program(compile_script(script))
    assert all(prog.in_target(i) for i in range(3))
    # f's entry stays an int3 somewhere: the return clause would read @start from the
    # area while those hits write it into the MapStore; once the return clause is on the
    # trap path, it reads @start from the MapStore, so the entry clause follows
    demoted = prog.with_trap_sites({0})
    assert demoted == {
        0: "@start is also read by a clause on the trap path",
        1: "reads @start in the target, which is also written on the user side",
    }
    assert not prog.in_target(0) and not prog.in_target(1) and prog.in_target(2)
    assert prog.with_trap_sites({2}) == {}  # nothing else depends on @other


def test_threads_bound_by_the_tracer():
    """In this process: the code mapped r-x, entries called through ctypes with frames
    whose thread pointer the test chooses, as the tracer binds a new thread's entry."""
    import ctypes

    prog = build_program(compile_script("uprobe:/bin/true:f { @[tid, pid] = count(); }"))
    code = mmap.mmap(-1, len(prog.code) + 4096,
                     prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(prog.code)
    shm = mmap.mmap(-1, prog.shm_size)
    try:
        base = ctypes.addressof(ctypes.c_char.from_buffer(code))
        area = ctypes.addressof(ctypes.c_char.from_buffer(shm))
        hit = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_uint64)(base + prog.entries["jp_hit"])
        with memoryview(shm) as view:
            prog.init_shm(view)
            prog.add_site(view, 3, (0,))
            prog.bind_thread(view, 0x7F0000001000, 111, 222)
            prog.bind_thread(view, 0x7F0000002000, 333, 222)
        frame = (ctypes.c_uint64 * 27)()
        for fs_base, times in ((0x7F0000001000, 3), (0x7F0000002000, 2)):
            frame[21] = fs_base  # user_regs_struct.fs_base
            for _ in range(times):
                hit(frame, area, 3)
        with memoryview(shm) as view:
            prog.forget_thread(view, 333)  # gone: the next thread with that pointer claims
        frame[21] = 0x7F0000002000
        hit(frame, area, 3)
        store = MapStore()
        reader = JumpReader(prog, shm, store)
        reader.merge_maps()
        got = {k: v.count for k, v in store.map("").entries.items()}
        reader.release()
        assert got == {(111, 222): 3, (333, 222): 2, (threading.get_native_id(), os.getpid()): 1}
        # ordinals were taken by the threads themselves, one each, in hit order
        assert struct.unpack_from("<Q", shm, L.H_NEXT_ORDINAL)[0] == 3
    finally:
        del hit
        shm.close()
        code.close()

"""LLVM IR of the in-target program, generated with llvmlite from the clause splits.

Three entry points with the SysV ABI (see docs/jump-path.md): jp_hit, jp_ret_enter and
jp_ret_exit. Everything else is internal and inlined. The shared area's base comes in as
an argument and every offset is a constant of the layout, so the code has no data of its
own and no relocations. Values are int64 as in the trap path's handlers: arithmetic wraps,
comparisons are signed, `/` and `%` follow BPF (x / 0 == 0, x % 0 == x).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import llvmlite.ir as ir

from runtime.jump import layout as L
from runtime.jump.split import (
    CAST_TYPES,
    Branch,
    ClauseSplit,
    Event,
    Step,
    events_of,
    target_nodes,
)
from uplang import ast

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I128 = ir.IntType(128)
PTR = ir.PointerType()
SIGN = 1 << 63

# user_regs_struct (the frame the trampoline builds): byte offsets.
FRAME = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104, "rdi": 112,
    "orig_rax": 120, "rip": 128, "cs": 136, "eflags": 144, "rsp": 152, "ss": 160,
    "fs_base": 168, "gs_base": 176,
}
ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")

SYS_GETPID, SYS_KILL, SYS_FUTEX, SYS_GETTID, SYS_PROCESS_VM_READV = 39, 62, 202, 186, 310
SYS_PRCTL, PR_GET_NAME = 157, 16
FUTEX_WAIT = 0  # not FUTEX_PRIVATE: the word is shared between processes
ETIMEDOUT, ESRCH = 110, 3
WAIT_NS = 20_000_000  # a full ring's writer re-checks the tracer every 20 ms
SPINS = 256


def store_atomic(b: ir.IRBuilder, v: ir.Value, p: ir.Value, order: str) -> None:
    """builder.store_atomic insists on a typed pointer; the instruction itself does not."""
    b._insert(ir.instructions.StoreAtomicInstr(b.block, v, p, order, 8))


def c64(v: int) -> ir.Constant:
    return ir.Constant(I64, v & ((1 << 64) - 1))


@dataclass
class Program:
    """What irgen produces: the module and the facts the tracer side needs."""

    module: ir.Module
    layout: L.Layout
    clause_bits: dict[int, int]  # plan clause index -> bit in the site masks
    splits: dict[int, ClauseSplit]
    params: tuple[str, ...] = ()
    events: dict[int, Event] = field(default_factory=dict)  # event id -> statement


class Gen:
    """One module: helpers, one function per in-target clause, the three entries."""

    def __init__(self, splits: dict[int, ClauseSplit], lay: L.Layout,
                 params: tuple[str, ...]) -> None:
        self.lay = lay
        self.params = params
        self.m = ir.Module(name="uprobe_jump")
        self.m.triple = "x86_64-unknown-linux-gnu"
        self.splits = {i: s for i, s in splits.items() if s.reason is None}
        self.clause_bits = {i: n for n, i in enumerate(sorted(self.splits))}
        self.events: dict[int, Event] = {}
        self.event_ids: dict[int, int] = {}  # id(Event) -> layout event id
        self.cyc = ir.Function(self.m, ir.FunctionType(I64, []), name="llvm.readcyclecounter")
        self.ctlz = ir.Function(self.m, ir.FunctionType(I64, [I64, I1]), name="llvm.ctlz.i64")
        self.map_find: dict[str, ir.Function] = {}

    # ------------------------------------------------------------------ module

    def build(self) -> Program:
        for idx, s in self.splits.items():
            for step in events_of(s.steps):
                ev = self.lay.add_event(idx, tuple(("str" if c.kind == "comm" else c.kind,
                                                    c.size) for c in step.captures))
                self.events[ev.id] = step
                self.event_ids[id(step)] = ev.id
        self.lay.finish()
        self.fn_thread = self.thread_fn()
        self.fn_reserve = self.reserve_fn()
        self.fn_clock = self.clock_fn()
        clause_fns = {i: self.clause_fn(i, s) for i, s in self.splits.items()}
        self.hit_fn(clause_fns)
        self.ret_enter_fn()
        self.ret_exit_fn(clause_fns)
        return Program(self.m, self.lay, self.clause_bits, self.splits, self.params,
                       self.events)

    def internal(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        fn = ir.Function(self.m, ir.FunctionType(ret, args), name=name)
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        fn.attributes.add("alwaysinline")
        return fn

    def entry(self, name: str, args: list[ir.Type]) -> ir.Function:
        fn = ir.Function(self.m, ir.FunctionType(I64, args), name=name)
        fn.attributes.add("nounwind")
        return fn

    # ------------------------------------------------------------------ small helpers

    @staticmethod
    def at(b: ir.IRBuilder, base: ir.Value, off: int | ir.Value) -> ir.Value:
        o = c64(off) if isinstance(off, int) else off
        return b.gep(base, [o], source_etype=I8)

    def ld(self, b: ir.IRBuilder, base: ir.Value, off: int | ir.Value,
           order: str | None = None) -> ir.Value:
        p = self.at(b, base, off)
        if order:
            return b.load_atomic(p, order, 8, typ=I64)
        return b.load(p, typ=I64)

    def st(self, b: ir.IRBuilder, base: ir.Value, off: int | ir.Value, v: ir.Value,
           order: str | None = None) -> None:
        p = self.at(b, base, off)
        if order:
            store_atomic(b, v, p, order)
        else:
            b.store(v, p)

    def syscall(self, b: ir.IRBuilder, nr: int, *args: ir.Value) -> ir.Value:
        regs = ["{rdi}", "{rsi}", "{rdx}", "{r10}", "{r8}", "{r9}"][: len(args)]
        cons = ",".join(["={rax}", "{rax}"] + regs + ["~{rcx}", "~{r11}", "~{memory}"])
        fty = ir.FunctionType(I64, [I64] * (1 + len(args)))
        return b.asm(fty, "syscall", cons, [c64(nr), *args], side_effect=True)

    @staticmethod
    def pause(b: ir.IRBuilder) -> None:
        b.asm(ir.FunctionType(ir.VoidType(), []), "pause", "~{memory}", [], side_effect=True)

    @staticmethod
    def z64(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
        return b.zext(v, I64)

    # ------------------------------------------------------------------ thread table

    def thread_fn(self) -> ir.Function:
        """The calling thread's entry, keyed by fs_base; claimed at its first hit (tid and
        pid from two syscalls, then cached). Null when the table is full."""
        fn = self.internal("thread_of", PTR, [PTR, PTR])
        f, shm = fn.args
        b = ir.IRBuilder(fn.append_basic_block("e"))
        mask = L.MAX_THREADS - 1
        bits = mask.bit_length()
        fsb = self.ld(b, f, FRAME["fs_base"])
        h = b.lshr(b.mul(fsb, c64(0x9E3779B97F4A7C15)), c64(64 - bits))
        tsize = self.lay.thread_size
        base = self.at(b, shm, self.lay.threads_off)

        def entry_at(bb: ir.IRBuilder, i: ir.Value) -> ir.Value:
            idx = bb.and_(bb.add(h, i), c64(mask))
            return self.at(bb, base, bb.mul(idx, c64(tsize)))

        # lookup: walk until a match or an empty entry (tombstones are 1: walk past them)
        loop = fn.append_basic_block("look")
        body = fn.append_basic_block("look_body")
        nxt = fn.append_basic_block("look_next")
        found = fn.append_basic_block("found")
        claim = fn.append_basic_block("claim")
        b.branch(loop)
        b.position_at_end(loop)
        i = b.phi(I64)
        i.add_incoming(c64(0), fn.entry_basic_block)
        b.cbranch(b.icmp_unsigned("<", i, c64(L.MAX_THREADS)), body, claim)
        b.position_at_end(body)
        e = entry_at(b, i)
        k = self.ld(b, e, L.T_FS_BASE, "acquire")
        hit = b.icmp_unsigned("==", k, fsb)
        b.cbranch(hit, found, nxt)
        b.position_at_end(nxt)
        i.add_incoming(b.add(i, c64(1)), nxt)
        b.cbranch(b.icmp_unsigned("==", k, c64(0)), claim, loop)
        b.position_at_end(found)
        # An entry the tracer bound has no ordinal yet: ordinals come from one lock xadd
        # in the target, so no two threads can ever own the same shard.
        fresh = fn.append_basic_block("fresh")
        known = fn.append_basic_block("known")
        b.cbranch(b.icmp_unsigned("==", self.ld(b, e, L.T_ORDINAL), c64(L.NO_ORDINAL)),
                  fresh, known)
        b.position_at_end(fresh)
        got = b.atomic_rmw("add", self.at(b, shm, L.H_NEXT_ORDINAL), c64(1), "monotonic")
        self.st(b, e, L.T_ORDINAL, got)
        b.branch(known)
        b.position_at_end(known)
        b.ret(e)
        # claim: the first empty or tombstone entry from h
        cl = fn.append_basic_block("claim_loop")
        cbody = fn.append_basic_block("claim_body")
        ctry = fn.append_basic_block("claim_try")
        cnext = fn.append_basic_block("claim_next")
        won = fn.append_basic_block("won")
        full = fn.append_basic_block("full")
        b.position_at_end(claim)
        b.branch(cl)
        b.position_at_end(cl)
        j = b.phi(I64)
        j.add_incoming(c64(0), claim)
        b.cbranch(b.icmp_unsigned("<", j, c64(L.MAX_THREADS)), cbody, full)
        b.position_at_end(cbody)
        ce = entry_at(b, j)
        ck = self.ld(b, ce, L.T_FS_BASE, "acquire")
        b.cbranch(b.icmp_unsigned("<=", ck, c64(1)), ctry, cnext)
        b.position_at_end(ctry)
        res = b.cmpxchg(self.at(b, ce, L.T_FS_BASE), ck, fsb, "acq_rel", "acquire")
        b.cbranch(b.extract_value(res, 1), won, cnext)
        b.position_at_end(cnext)
        j.add_incoming(b.add(j, c64(1)), cnext)
        b.branch(cl)
        b.position_at_end(won)
        self.st(b, ce, L.T_TID, self.syscall(b, SYS_GETTID))
        self.st(b, ce, L.T_PID, self.syscall(b, SYS_GETPID))
        ordn = b.atomic_rmw("add", self.at(b, shm, L.H_NEXT_ORDINAL), c64(1), "monotonic")
        self.st(b, ce, L.T_ORDINAL, ordn)
        self.st(b, ce, L.T_DEPTH, c64(0))
        for n in range(len(self.lay.tl_names)):
            self.st(b, ce, L.T_TL + 8 * n, c64(0))
        b.ret(ce)
        b.position_at_end(full)
        b.atomic_rmw("add", self.at(b, shm, L.H_THREAD_FULL), c64(1), "monotonic")
        b.ret(ir.Constant(PTR, None))
        return fn

    # ------------------------------------------------------------------ clock

    def clock_fn(self) -> ir.Function:
        """CLOCK_MONOTONIC nanoseconds from the TSC, scaled by the header's calibration."""
        fn = self.internal("clock_ns", I64, [PTR])
        (shm,) = fn.args
        b = ir.IRBuilder(fn.append_basic_block("e"))
        tsc = b.call(self.cyc, [])
        d = b.sub(tsc, self.ld(b, shm, L.H_CLOCK_BASE_TSC))
        mult = self.ld(b, shm, L.H_CLOCK_MULT)
        shift = self.ld(b, shm, L.H_CLOCK_SHIFT)
        prod = b.mul(b.zext(d, I128), b.zext(mult, I128))
        scaled = b.trunc(b.lshr(prod, b.zext(shift, I128)), I64)
        b.ret(b.add(self.ld(b, shm, L.H_CLOCK_BASE_NS), scaled))
        return fn

    # ------------------------------------------------------------------ ring

    def reserve_fn(self) -> ir.Function:
        """A ring position (lock xadd), or -1 when the event is dropped (and counted).

        A full ring makes the writer wait: a short spin, then futex waits of 20 ms; after a
        timeout it asks the kernel whether the tracer still exists (kill(pid, 0)); when it
        does not, the header's tracer_gone word is set and every later event is dropped."""
        fn = self.internal("reserve", I64, [PTR])
        (shm,) = fn.args
        R = self.lay.ring_records
        b = ir.IRBuilder(fn.append_basic_block("e"))
        ts = b.alloca(I64, size=2)  # in the entry block: a static slot
        drop = fn.append_basic_block("drop")
        chk = fn.append_basic_block("dropmode")
        take = fn.append_basic_block("take")
        gone = self.ld(b, shm, L.H_TRACER_GONE, "monotonic")
        b.cbranch(b.icmp_unsigned("!=", gone, c64(0)), drop, chk)
        b.position_at_end(drop)
        b.atomic_rmw("add", self.at(b, shm, L.H_LOST), c64(1), "monotonic")
        b.ret(c64(-1))
        b.position_at_end(chk)
        flags = self.ld(b, shm, L.H_FLAGS)
        isdrop = b.icmp_unsigned("!=", b.and_(flags, c64(L.FLAG_DROP)), c64(0))
        head = self.ld(b, shm, L.H_RING_HEAD, "monotonic")
        tail = self.ld(b, shm, L.H_RING_TAIL, "acquire")
        fullnow = b.icmp_unsigned(">=", b.sub(head, tail), c64(R))
        b.cbranch(b.and_(isdrop, fullnow), drop, take)
        b.position_at_end(take)
        pos = b.atomic_rmw("add", self.at(b, shm, L.H_RING_HEAD), c64(1), "monotonic")
        loop = fn.append_basic_block("wait")
        ok = fn.append_basic_block("ok")
        spin = fn.append_basic_block("spin")
        sleep = fn.append_basic_block("sleep")
        dowait = fn.append_basic_block("dowait")
        after = fn.append_basic_block("after")
        probe = fn.append_basic_block("probe")
        dead = fn.append_basic_block("dead")
        b.branch(loop)
        b.position_at_end(loop)
        n = b.phi(I64)
        n.add_incoming(c64(0), take)
        t = self.ld(b, shm, L.H_RING_TAIL, "acquire")
        b.cbranch(b.icmp_unsigned("<", b.sub(pos, t), c64(R)), ok, spin)
        b.position_at_end(ok)
        b.ret(pos)
        b.position_at_end(spin)
        b.cbranch(b.icmp_unsigned("<", n, c64(SPINS)), fn.append_basic_block("p"), sleep)
        b.position_at_end(fn.basic_blocks[-1])
        self.pause(b)
        n.add_incoming(b.add(n, c64(1)), b.block)
        b.branch(loop)
        b.position_at_end(sleep)
        futex = self.at(b, shm, L.H_FUTEX)
        seen = b.load_atomic(futex, "acquire", 4, typ=I32)
        b.atomic_rmw("add", self.at(b, shm, L.H_WAITERS), c64(1), "seq_cst")
        t2 = self.ld(b, shm, L.H_RING_TAIL, "seq_cst")
        gone2 = self.ld(b, shm, L.H_TRACER_GONE, "monotonic")
        stillfull = b.icmp_unsigned(">=", b.sub(pos, t2), c64(R))
        b.cbranch(b.and_(stillfull, b.icmp_unsigned("==", gone2, c64(0))), dowait, after)
        b.position_at_end(dowait)
        self.st(b, ts, 0, c64(0))
        self.st(b, ts, 8, c64(WAIT_NS))
        r = self.syscall(b, SYS_FUTEX, b.ptrtoint(futex, I64), c64(FUTEX_WAIT),
                         b.zext(seen, I64), b.ptrtoint(ts, I64))
        b.atomic_rmw("sub", self.at(b, shm, L.H_WAITERS), c64(1), "seq_cst")
        b.cbranch(b.icmp_signed("==", r, c64(-ETIMEDOUT)), probe, loop)
        b.position_at_end(after)
        b.atomic_rmw("sub", self.at(b, shm, L.H_WAITERS), c64(1), "seq_cst")
        b.cbranch(b.icmp_unsigned("!=", gone2, c64(0)), drop, loop)
        b.position_at_end(probe)
        k = self.syscall(b, SYS_KILL, self.ld(b, shm, L.H_TRACER_PID), c64(0))
        b.cbranch(b.icmp_signed("==", k, c64(-ESRCH)), dead, loop)
        b.position_at_end(dead)
        self.st(b, shm, L.H_TRACER_GONE, c64(1), "monotonic")
        b.branch(drop)
        n.add_incoming(c64(0), dowait)
        n.add_incoming(c64(0), after)
        n.add_incoming(c64(0), probe)
        return fn

    # ------------------------------------------------------------------ maps

    def find_fn(self, name: str) -> ir.Function:
        """map_find(shm, insert, k0..kn) -> slot or null: open addressing, linear probe;
        a slot is claimed with cmpxchg (empty -> busy), its key written, then published."""
        if name in self.map_find:
            return self.map_find[name]
        ml = self.lay.maps[name]
        ar = max(ml.arity, 1)
        fn = self.internal(f"find_{ml.index}", PTR, [PTR, I1] + [I64] * ar)
        shm, insert, *keys = fn.args
        b = ir.IRBuilder(fn.append_basic_block("e"))
        base = self.at(b, shm, ml.offset + L.MAP_HEADER)
        if ml.arity == 0:
            slot = base
            st = self.at(b, slot, L.S_STATE)
            cur = b.load_atomic(st, "acquire", 8, typ=I64)
            ready = b.icmp_unsigned("==", cur, c64(L.SLOT_READY))
            pub = fn.append_basic_block("pub")
            done = fn.append_basic_block("done")
            none = fn.append_basic_block("none")
            b.cbranch(ready, done, pub)
            b.position_at_end(pub)
            b.cbranch(insert, fn.append_basic_block("set"), none)
            b.position_at_end(fn.basic_blocks[-1])
            store_atomic(b, c64(L.SLOT_READY), st, "release")
            b.branch(done)
            b.position_at_end(done)
            b.ret(slot)
            b.position_at_end(none)
            b.ret(ir.Constant(PTR, None))
            self.map_find[name] = fn
            return fn
        h = c64(0x84222325CBF29CE4)
        for k in keys:
            h = b.mul(b.xor(h, k), c64(0x100000001B3))
            h = b.xor(h, b.lshr(h, c64(29)))
        h = b.mul(h, c64(0x9E3779B97F4A7C15))
        loop = fn.append_basic_block("loop")
        body = fn.append_basic_block("body")
        full = fn.append_basic_block("full")
        b.branch(loop)
        b.position_at_end(loop)
        i = b.phi(I64)
        i.add_incoming(c64(0), fn.entry_basic_block)
        b.cbranch(b.icmp_unsigned("<", i, c64(ml.slots)), body, full)
        b.position_at_end(body)
        idx = b.and_(b.add(h, i), c64(ml.slots - 1))
        slot = self.at(b, base, b.mul(idx, c64(ml.slot_size)))
        st = self.at(b, slot, L.S_STATE)
        cur = b.load_atomic(st, "acquire", 8, typ=I64)
        isready = fn.append_basic_block("ready")
        notready = fn.append_basic_block("notready")
        match = fn.append_basic_block("match")
        nxt = fn.append_basic_block("next")
        b.cbranch(b.icmp_unsigned("==", cur, c64(L.SLOT_READY)), isready, notready)
        b.position_at_end(isready)
        eq = ir.Constant(I1, 1)
        for n, k in enumerate(keys):
            eq = b.and_(eq, b.icmp_unsigned("==", self.ld(b, slot, 8 + 8 * n), k))
        b.cbranch(eq, match, nxt)
        b.position_at_end(match)
        b.ret(slot)
        b.position_at_end(nxt)
        i.add_incoming(b.add(i, c64(1)), nxt)
        b.branch(loop)
        b.position_at_end(notready)
        busy = fn.append_basic_block("busy")
        empty = fn.append_basic_block("empty")
        b.cbranch(b.icmp_unsigned("==", cur, c64(L.SLOT_BUSY)), busy, empty)
        b.position_at_end(busy)  # another thread is writing this key: wait for it
        self.pause(b)
        i.add_incoming(i, busy)
        b.branch(loop)
        b.position_at_end(empty)
        claim = fn.append_basic_block("claim")
        nokey = fn.append_basic_block("nokey")
        b.cbranch(insert, claim, nokey)
        b.position_at_end(nokey)
        b.ret(ir.Constant(PTR, None))
        b.position_at_end(claim)
        won = fn.append_basic_block("won")
        if ml.max_keys:
            # max_map_keys, as the trap path's MapStore: the first keys are kept, later new
            # keys are dropped and counted. A key is reserved before its slot is claimed.
            keysp = self.at(b, shm, ml.offset + L.M_KEYS)
            n = b.atomic_rmw("add", keysp, c64(1), "monotonic")
            over = fn.append_basic_block("over")
            cas = fn.append_basic_block("cas")
            lost = fn.append_basic_block("lostslot")
            b.cbranch(b.icmp_unsigned("<", n, c64(ml.max_keys)), cas, over)
            b.position_at_end(over)
            b.atomic_rmw("sub", keysp, c64(1), "monotonic")
            b.atomic_rmw("add", self.at(b, shm, ml.offset + L.M_DROPS), c64(1), "monotonic")
            b.ret(ir.Constant(PTR, None))
            b.position_at_end(cas)
            res = b.cmpxchg(st, c64(L.SLOT_EMPTY), c64(L.SLOT_BUSY), "acq_rel", "acquire")
            b.cbranch(b.extract_value(res, 1), won, lost)
            b.position_at_end(lost)  # another thread took the slot: give the key back
            b.atomic_rmw("sub", keysp, c64(1), "monotonic")
            b.branch(loop)
            i.add_incoming(i, lost)
        else:
            res = b.cmpxchg(st, c64(L.SLOT_EMPTY), c64(L.SLOT_BUSY), "acq_rel", "acquire")
            b.cbranch(b.extract_value(res, 1), won, loop)
            i.add_incoming(i, claim)
        b.position_at_end(won)
        for n, k in enumerate(keys):
            self.st(b, slot, 8 + 8 * n, k)
        store_atomic(b, c64(L.SLOT_READY), st, "release")
        b.ret(slot)
        b.position_at_end(full)
        b.cbranch(insert, fn.append_basic_block("count"), fn.append_basic_block("nofull"))
        b.position_at_end(fn.basic_blocks[-2])
        b.atomic_rmw("add", self.at(b, shm, ml.offset + L.M_DROPS), c64(1), "monotonic")
        b.ret(ir.Constant(PTR, None))
        b.position_at_end(fn.basic_blocks[-1])
        b.ret(ir.Constant(PTR, None))
        self.map_find[name] = fn
        return fn

    # ------------------------------------------------------------------ clauses

    def clause_fn(self, idx: int, s: ClauseSplit) -> ir.Function:
        fn = self.internal(f"clause_{idx}", I64, [PTR, PTR, PTR])
        f, shm, thr = fn.args
        b = ir.IRBuilder(fn.append_basic_block("e"))
        cg = ClauseCode(self, fn, b, f, shm, thr)
        # Every stack slot first: llvmlite builders keep their place by index, so nothing
        # may be inserted ahead of a builder's position later.
        for name in sorted({n.name for n in target_nodes(s) if isinstance(n, ast.Var)}):
            cg.vars[name] = b.alloca(I64, name=f"v_{name}")
            b.store(c64(0), cg.vars[name])  # $variables start at 0 on every hit
        refs = [n.target if isinstance(n, ast.Assign) else n for n in target_nodes(s)]
        comm_keys = any(isinstance(n, ast.MapRef) and "comm" in self.lay.maps.get(
            n.name, _NO_MAP).key_kinds for n in refs)
        comm_buf = b.alloca(I64, size=2) if comm_keys else None
        if any(c.kind in ("str", "buf") for ev in events_of(s.steps) for c in ev.captures):
            cg.iov = b.alloca(I64, size=6)
        if any(isinstance(n, ast.Builtin) and n.name in ("nsecs", "elapsed")
               for n in target_nodes(s)) or any(_calls_time(ev) for ev in events_of(s.steps)):
            # One clock read per hit, as the trap path's context caches it: the TSC read
            # is the dearest instruction here (~20 ns under a hypervisor).
            cg.hit_ns = cg.b.call(self.fn_clock, [shm])
        if s.predicate is not None:
            cond = cg.expr(s.predicate)
            go = fn.append_basic_block("go")
            stop = fn.append_basic_block("stop")
            cg.b.cbranch(cg.b.icmp_unsigned("!=", cond, c64(0)), go, stop)
            cg.b.position_at_end(stop)
            cg.b.ret(c64(0))
            cg.b.position_at_end(go)
        if comm_buf is not None:
            # The thread's name for `comm` keys, once per hit (the kernel pads it with
            # NULs to 16 bytes, so equal names are equal words).
            self.syscall(cg.b, SYS_PRCTL, c64(PR_GET_NAME), cg.b.ptrtoint(comm_buf, I64))
            cg.comm_words = (self.ld(cg.b, comm_buf, 0), self.ld(cg.b, comm_buf, 8))
        cg.steps(s.steps)
        cg.b.ret(c64(0))
        return fn

    def hit_fn(self, clause_fns: dict[int, ir.Function]) -> None:
        fn = self.entry("jp_hit", [PTR, PTR, I64])
        f, shm, site = fn.args
        b = ir.IRBuilder(fn.append_basic_block("e"))
        mask = self.ld(b, shm, b.add(c64(L.SITES_OFF), b.mul(site, c64(L.SITE_SIZE))))
        self.dispatch(fn, b, f, shm, self.unless_stopped(b, shm, mask), clause_fns, "entry")

    def unless_stopped(self, b: ir.IRBuilder, shm: ir.Value, mask: ir.Value) -> ir.Value:
        """No clause runs after exit() (H_STOPPED), as on the trap path."""
        stopped = self.ld(b, shm, L.H_STOPPED, "monotonic")
        return b.select(b.icmp_unsigned("!=", stopped, c64(0)), c64(0), mask)

    def dispatch(self, fn: ir.Function, b: ir.IRBuilder, f: ir.Value, shm: ir.Value,
                 mask: ir.Value, clause_fns: dict[int, ir.Function], kind: str,
                 thr: ir.Value | None = None, finish: ir.Value | None = None) -> None:
        """Runs every clause of `kind` whose bit is set in mask, in clause order."""
        if thr is None:
            go = fn.append_basic_block("thr")
            out = fn.append_basic_block("out")
            b.cbranch(b.icmp_unsigned("==", mask, c64(0)), out, go)
            b.position_at_end(out)
            b.ret(c64(0))
            b.position_at_end(go)
            thr = b.call(self.fn_thread, [f, shm])
            ok = fn.append_basic_block("ok")
            b.cbranch(b.icmp_unsigned("==", b.ptrtoint(thr, I64), c64(0)), out, ok)
            b.position_at_end(ok)
        for idx, cfn in sorted(clause_fns.items()):
            if self.splits[idx].kind != kind:
                continue
            bit = 1 << self.clause_bits[idx]
            run = fn.append_basic_block(f"run{idx}")
            nxt = fn.append_basic_block(f"after{idx}")
            b.cbranch(b.icmp_unsigned("!=", b.and_(mask, c64(bit)), c64(0)), run, nxt)
            b.position_at_end(run)
            b.call(cfn, [f, shm, thr])
            b.branch(nxt)
            b.position_at_end(nxt)
        b.ret(finish if finish is not None else c64(0))

    def ret_enter_fn(self) -> None:
        """Arms a return probe: pushes (return address, its slot, site) on this thread's
        shadow stack and aims the slot at the return trampoline. Entries whose slot lies
        at or below this rsp belong to frames that are gone (longjmp, exceptions)."""
        fn = self.entry("jp_ret_enter", [PTR, PTR, I64, I64])
        f, shm, site, tramp = fn.args
        b = ir.IRBuilder(fn.append_basic_block("e"))
        thr = b.call(self.fn_thread, [f, shm])
        ok = fn.append_basic_block("ok")
        out = fn.append_basic_block("out")
        b.cbranch(b.icmp_unsigned("==", b.ptrtoint(thr, I64), c64(0)), out, ok)
        b.position_at_end(out)
        b.ret(c64(0))
        b.position_at_end(ok)
        rsp = self.ld(b, f, FRAME["rsp"])
        # A slot that already holds the trampoline is a tail call chaining onto an armed
        # frame: keep that frame's entries (drop only those below). Otherwise an entry
        # with this very slot is stale (its frame was left by longjmp) and goes too.
        chained = b.icmp_unsigned("==", b.load(b.inttoptr(rsp, PTR), typ=I64), tramp)
        limit = b.add(rsp, b.select(chained, c64(0), c64(1)))
        depth = self.prune(fn, b, thr, limit)
        full = fn.append_basic_block("full")
        push = fn.append_basic_block("push")
        b.cbranch(b.icmp_unsigned(">=", depth, c64(L.SHADOW_DEPTH)), full, push)
        b.position_at_end(full)
        b.atomic_rmw("add", self.at(b, shm, L.H_SHADOW_MISS), c64(1), "monotonic")
        b.ret(c64(0))
        b.position_at_end(push)
        slotp = b.inttoptr(rsp, PTR)
        e = self.shadow(b, thr, depth)
        self.st(b, e, 0, b.load(slotp, typ=I64))
        self.st(b, e, 8, rsp)
        self.st(b, e, 16, site)
        self.st(b, thr, L.T_DEPTH, b.add(depth, c64(1)))
        b.store(tramp, slotp)
        b.ret(c64(1))

    def shadow(self, b: ir.IRBuilder, thr: ir.Value, i: ir.Value) -> ir.Value:
        return self.at(b, thr, b.add(c64(self.lay.shadow_off), b.mul(i, c64(L.SHADOW_ENTRY))))

    def prune(self, fn: ir.Function, b: ir.IRBuilder, thr: ir.Value,
              limit: ir.Value) -> ir.Value:
        """Drops shadow entries whose slot is below `limit`; returns the new depth."""
        loop = fn.append_basic_block("prune")
        chk = fn.append_basic_block("prune_chk")
        done = fn.append_basic_block("pruned")
        start = b.block
        d0 = self.ld(b, thr, L.T_DEPTH)
        b.branch(loop)
        b.position_at_end(loop)
        d = b.phi(I64)
        d.add_incoming(d0, start)
        b.cbranch(b.icmp_unsigned("==", d, c64(0)), done, chk)
        b.position_at_end(chk)
        top = self.shadow(b, thr, b.sub(d, c64(1)))
        slot = self.ld(b, top, 8)
        d.add_incoming(b.sub(d, c64(1)), chk)
        b.cbranch(b.icmp_unsigned("<", slot, limit), loop, done)
        b.position_at_end(done)
        res = b.phi(I64)
        res.add_incoming(d, loop)
        res.add_incoming(d, chk)
        self.st(b, thr, L.T_DEPTH, res)
        return res

    def ret_exit_fn(self, clause_fns: dict[int, ir.Function]) -> None:
        """The return trampoline's call: pops the returning frame's entries (several when
        tail calls chained them on one slot), runs their sites' return clauses, and returns
        the original return address (0: none found, the trampoline traps)."""
        fn = self.entry("jp_ret_exit", [PTR, PTR])
        f, shm = fn.args
        b = ir.IRBuilder(fn.append_basic_block("e"))
        thr = b.call(self.fn_thread, [f, shm])
        ok = fn.append_basic_block("ok")
        out = fn.append_basic_block("out")
        b.cbranch(b.icmp_unsigned("==", b.ptrtoint(thr, I64), c64(0)), out, ok)
        b.position_at_end(out)
        b.ret(c64(0))
        b.position_at_end(ok)
        slot = b.sub(self.ld(b, f, FRAME["rsp"]), c64(8))
        d0 = self.prune(fn, b, thr, slot)
        start = b.block
        loop = fn.append_basic_block("pop")
        chk = fn.append_basic_block("pop_chk")
        run = fn.append_basic_block("pop_run")
        done = fn.append_basic_block("popped")
        b.branch(loop)
        b.position_at_end(loop)
        d = b.phi(I64)
        orig = b.phi(I64)
        d.add_incoming(d0, start)
        orig.add_incoming(c64(0), start)
        b.cbranch(b.icmp_unsigned("==", d, c64(0)), done, chk)
        b.position_at_end(chk)
        top = self.shadow(b, thr, b.sub(d, c64(1)))
        b.cbranch(b.icmp_unsigned("==", self.ld(b, top, 8), slot), run, done)
        b.position_at_end(run)
        ra = self.ld(b, top, 0)
        site = self.ld(b, top, 16)
        nd = b.sub(d, c64(1))
        self.st(b, thr, L.T_DEPTH, nd)
        mask = self.ld(b, shm, b.add(c64(L.SITES_OFF + 8), b.mul(site, c64(L.SITE_SIZE))))
        mask = self.unless_stopped(b, shm, mask)
        for idx, cfn in sorted(clause_fns.items()):
            if self.splits[idx].kind != "return":
                continue
            bit = 1 << self.clause_bits[idx]
            r = fn.append_basic_block(f"ret{idx}")
            n = fn.append_basic_block(f"ret_after{idx}")
            b.cbranch(b.icmp_unsigned("!=", b.and_(mask, c64(bit)), c64(0)), r, n)
            b.position_at_end(r)
            b.call(cfn, [f, shm, thr])
            b.branch(n)
            b.position_at_end(n)
        d.add_incoming(nd, b.block)
        orig.add_incoming(ra, b.block)
        b.branch(loop)
        b.position_at_end(done)
        res = b.phi(I64)
        res.add_incoming(orig, loop)
        res.add_incoming(orig, chk)
        miss = fn.append_basic_block("miss")
        fine = fn.append_basic_block("fine")
        b.cbranch(b.icmp_unsigned("==", res, c64(0)), miss, fine)
        b.position_at_end(miss)
        b.atomic_rmw("add", self.at(b, shm, L.H_RET_MISS), c64(1), "monotonic")
        b.ret(c64(0))
        b.position_at_end(fine)
        b.ret(res)


class ClauseCode:
    """Statements and expressions of one clause, emitted into its function."""

    def __init__(self, g: Gen, fn: ir.Function, b: ir.IRBuilder, f: ir.Value, shm: ir.Value,
                 thr: ir.Value) -> None:
        self.g, self.fn, self.b, self.f, self.shm, self.thr = g, fn, b, f, shm, thr
        self.vars: dict[str, ir.Value] = {}
        self.iov: ir.Value = ir.Constant(PTR, None)
        self.comm_words: tuple[ir.Value, ir.Value] = (c64(0), c64(0))
        self.hit_ns: ir.Value = c64(0)  # the hit's timestamp when the clause reads one
        self.n = 0

    def block(self, name: str) -> ir.Block:
        self.n += 1
        return self.fn.append_basic_block(f"{name}{self.n}")

    def var(self, name: str) -> ir.Value:
        return self.vars[name]  # allocated at the clause's start (Gen.clause_fn)

    # ------------------------------------------------------------------ statements

    def steps(self, steps: tuple[Step, ...]) -> None:
        for step in steps:
            if isinstance(step, Event):
                self.event(self.g.event_ids[id(step)], step)
            elif isinstance(step, Branch):
                self.if_else(step.cond, step.then, step.orelse)
            else:
                self.stmt(step)

    def if_else(self, cond_e: ast.Expr, then_s: tuple[Step, ...],
                else_s: tuple[Step, ...]) -> None:
        b = self.b
        cond = self.expr(cond_e)
        then, other, join = self.block("then"), self.block("else"), self.block("fi")
        b.cbranch(b.icmp_unsigned("!=", cond, c64(0)), then, other)
        b.position_at_end(then)
        self.steps(then_s)
        b.branch(join)
        b.position_at_end(other)
        self.steps(else_s)
        b.branch(join)
        b.position_at_end(join)

    def stmt(self, s: ast.Stmt) -> None:
        if isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Call) and e.name == "delete":
                assert isinstance(e.args[0], ast.MapRef)  # the split admits only these
                self.delete(e.args[0])
            else:
                self.expr(e)
        elif isinstance(s, ast.If):
            self.if_else(s.cond, s.then, s.orelse)
        elif isinstance(s, ast.Block):
            self.steps(s.body)
        else:  # the split admits nothing else
            raise AssertionError(type(s).__name__)

    def assign(self, s: ast.Assign) -> None:
        b, t = self.b, s.target
        if isinstance(t, ast.Var):
            v = self.expr(s.value)
            p = self.var(t.name)
            if s.op != "=":
                v = self.binop(s.op[:-1], b.load(p, typ=I64), v)
            b.store(v, p)
            return
        if isinstance(t, ast.ThreadLocal):
            v = self.expr(s.value)
            off = self.g.lay.tl_offset(t.name)
            if s.op != "=":
                v = self.binop(s.op[:-1], self.g.ld(b, self.thr, off), v)
            self.g.st(b, self.thr, off, v)
            return
        assert isinstance(t, ast.MapRef)
        keys = self.key_words(t)
        ml = self.g.lay.maps[t.name]
        if isinstance(s.value, ast.Call) and s.value.name == ml.kind:
            val = self.expr(s.value.args[0]) if s.value.args else c64(0)
            slot = self.find(t.name, keys, True)
            self.if_slot(slot, lambda sl: self.aggregate(ml, sl, val))
            return
        val = self.expr(s.value)
        slot = self.find(t.name, keys, True)

        def store(sl: ir.Value) -> None:
            vo = ml.values_off
            if s.op == "=":
                self.g.st(b, sl, vo + 8, val, "monotonic")
            else:
                d = val if s.op == "+=" else b.sub(c64(0), val)
                b.atomic_rmw("add", self.g.at(b, sl, vo + 8), d, "monotonic")
            self.publish(sl, vo)

        self.if_slot(slot, store)

    def publish(self, sl: ir.Value, vo: int) -> None:
        """An int element changed: present, and its write sequence moves on (the reader
        merges elements whose sequence changed since its last look)."""
        b = self.b
        self.g.st(b, sl, vo, c64(1), "monotonic")
        b.atomic_rmw("add", self.g.at(b, sl, vo + 16), c64(1), "release")

    def delete(self, ref: ast.MapRef) -> None:
        keys = self.key_words(ref)
        ml = self.g.lay.maps[ref.name]
        slot = self.find(ref.name, keys, False)

        def clear(sl: ir.Value) -> None:
            b = self.b
            self.g.st(b, sl, ml.values_off, c64(0), "monotonic")
            self.g.st(b, sl, ml.values_off + 8, c64(0), "monotonic")
            b.atomic_rmw("add", self.g.at(b, sl, ml.values_off + 16), c64(1), "release")

        self.if_slot(slot, clear)

    def key_words(self, ref: ast.MapRef) -> list[ir.Value]:
        """The key as words: integers as they are, `comm` as its two words."""
        ml = self.g.lay.maps[ref.name]
        out: list[ir.Value] = []
        for k, kk in zip(ref.keys, ml.key_kinds, strict=True):
            if kk == "comm":
                out.extend(self.comm_words)
            else:
                out.append(self.expr(k))
        return out

    def find(self, name: str, keys: list[ir.Value], insert: bool) -> ir.Value:
        fn = self.g.find_fn(name)
        if not keys:
            keys = [c64(0)]
        return self.b.call(fn, [self.shm, ir.Constant(I1, int(insert)), *keys])

    def if_slot(self, slot: ir.Value, body: Callable[[ir.Value], None]) -> None:
        b = self.b
        yes, join = self.block("slot"), self.block("noslot")
        b.cbranch(b.icmp_unsigned("!=", b.ptrtoint(slot, I64), c64(0)), yes, join)
        b.position_at_end(yes)
        body(slot)
        b.branch(join)
        b.position_at_end(join)

    # ------------------------------------------------------------------ aggregations

    def aggregate(self, ml: L.MapLayout, slot: ir.Value, v: ir.Value) -> None:
        b, g = self.b, self.g
        ordn = g.ld(b, self.thr, L.T_ORDINAL)
        shard = b.and_(ordn, c64(L.SHARDS - 1))
        excl = b.icmp_unsigned("<", ordn, c64(L.SHARDS))
        base = g.at(b, slot, b.add(c64(ml.values_off), b.mul(shard, c64(8 * ml.stride))))
        k = ml.kind
        if k == "count":
            self.add(base, 0, c64(1), excl)
        elif k == "sum":
            self.add(base, 0, v, excl)
        elif k in ("avg", "stats"):
            self.add(base, 0, c64(1), excl)
            self.add(base, 8, v, excl)
        elif k in ("min", "max"):
            enc = b.xor(v, c64(SIGN))
            if k == "min":
                enc = b.xor(enc, c64(-1))
            self.umax(base, 8, enc, excl)
            g.st(b, base, 0, c64(1), "monotonic")
        elif k == "hist":
            self.add(base, b.mul(self.hist_index(v, ml.hist_bits), c64(8)), c64(1), excl)
        elif k == "lhist":
            assert ml.lhist_args is not None
            self.add(base, b.mul(self.lhist_index(v, *ml.lhist_args), c64(8)), c64(1), excl)
        else:
            raise AssertionError(k)

    def add(self, base: ir.Value, off: int | ir.Value, v: ir.Value, excl: ir.Value) -> None:
        """+= on a shard word: when this thread owns the shard (ordinal < SHARDS) one
        `add [mem], reg` without a lock prefix (one instruction, so a signal handler of
        this thread that hits a probe cannot slip between a load and a store; LLVM would
        emit `lock` even for a single-thread atomic), else `lock add`."""
        b = self.b
        p = self.g.at(b, base, off)
        mine, shared, join = self.block("mine"), self.block("shared"), self.block("added")
        b.cbranch(excl, mine, shared)
        b.position_at_end(mine)
        b.asm(ir.FunctionType(ir.VoidType(), [I64, I64]), "addq $1, ($0)",
              "r,r,~{memory},~{dirflag},~{fpsr},~{flags}", [b.ptrtoint(p, I64), v],
              side_effect=True)
        b.branch(join)
        b.position_at_end(shared)
        b.atomic_rmw("add", p, v, "monotonic")
        b.branch(join)
        b.position_at_end(join)

    def umax(self, base: ir.Value, off: int, v: ir.Value, excl: ir.Value) -> None:
        b = self.b
        p = self.g.at(b, base, off)
        mine, shared, join = self.block("mine"), self.block("shared"), self.block("maxed")
        b.cbranch(excl, mine, shared)
        b.position_at_end(mine)
        old = b.load_atomic(p, "monotonic", 8, typ=I64)
        new = b.select(b.icmp_unsigned(">", v, old), v, old)
        store_atomic(b, new, p, "monotonic")
        b.branch(join)
        b.position_at_end(shared)
        b.atomic_rmw("umax", p, v, "monotonic")
        b.branch(join)
        b.position_at_end(join)

    def hist_index(self, v: ir.Value, bits: int) -> ir.Value:
        """runtime.maps.hist_index, branch-free."""
        b = self.b
        n = 1 << bits
        neg = b.icmp_signed("<", v, c64(0))
        small = b.icmp_signed("<", v, c64(n))
        bitlen = b.sub(c64(64), b.call(self.g.ctlz, [b.or_(v, c64(1)), ir.Constant(I1, 0)]))
        p = b.sub(bitlen, c64(1 + bits))
        p = b.select(b.icmp_signed("<", p, c64(0)), c64(0), p)
        big = b.add(b.sub(b.add(b.shl(b.add(p, c64(1)), c64(bits)), b.lshr(v, p)), c64(n)),
                    c64(1))
        idx = b.select(small, b.add(v, c64(1)), big)
        return b.select(neg, c64(0), idx)

    def lhist_index(self, v: ir.Value, lo: int, hi: int, step: int) -> ir.Value:
        b = self.b
        n = (hi - lo) // step
        mid = b.add(b.sdiv(b.sub(v, c64(lo)), c64(step)), c64(1))
        mid = b.select(b.icmp_signed(">", mid, c64(n + 1)), c64(n + 1), mid)
        idx = b.select(b.icmp_signed(">=", v, c64(hi)), c64(n + 1), mid)
        return b.select(b.icmp_signed("<", v, c64(lo)), c64(0), idx)

    # ------------------------------------------------------------------ events

    def event(self, eid: int, ev: Event) -> None:
        """Evaluates the captures, reserves a record, writes it, commits it."""
        b, g = self.b, self.g
        if isinstance(ev.stmt, ast.ExprStmt) and isinstance(ev.stmt.expr, ast.Call) \
                and ev.stmt.expr.name == "exit":
            # Later hits run nothing, from this instant on, in every thread (the drain
            # runs exit() itself later).
            g.st(b, self.shm, L.H_STOPPED, c64(1), "monotonic")
        vals = [c64(0) if c.kind == "comm" else self.expr(c.expr) for c in ev.captures]
        pos = b.call(g.fn_reserve, [self.shm])
        go, skip = self.block("rec"), self.block("norec")
        b.cbranch(b.icmp_signed("<", pos, c64(0)), skip, go)
        b.position_at_end(go)
        lay = g.lay
        roff = b.add(c64(lay.ring_off),
                     b.mul(b.and_(pos, c64(lay.ring_records - 1)), c64(lay.record_size)))
        rec = g.at(b, self.shm, roff)
        tid = g.ld(b, self.thr, L.T_TID)
        word = b.or_(c64(eid), b.shl(tid, c64(32)))
        g.st(b, rec, L.R_EVENT, word)
        g.st(b, rec, L.R_NSECS, self.hit_ns)
        g.st(b, rec, L.R_PID, g.ld(b, self.thr, L.T_PID))
        layout_ev = lay.events[eid - 1]
        for cap, off, v in zip(ev.captures, layout_ev.cap_offsets, vals, strict=True):
            if cap.kind == "int":
                g.st(b, rec, off, v)
            elif cap.kind == "comm":  # 16 bytes, NUL-terminated by the kernel
                g.st(b, rec, off, c64(0))
                g.syscall(b, SYS_PRCTL, c64(PR_GET_NAME),
                          b.ptrtoint(g.at(b, rec, off + 8), I64))
            elif cap.kind == "buf":
                self.copy_buf(g.at(b, rec, off), v, cap.size)
            else:
                self.copy_str(g.at(b, rec, off + 8), v, cap.size, g.at(b, rec, off))
        g.st(b, rec, L.R_COMMIT, b.add(pos, c64(1)), "release")
        b.branch(skip)
        b.position_at_end(skip)

    def copy_buf(self, at: ir.Value, addr: ir.Value, n: int) -> None:
        """buf(addr, n): exactly n bytes or nothing (the trap path reads all or fails):
        status word (0 read, 1 failed), the address, the bytes."""
        b, g = self.b, self.g
        g.st(b, at, 8, addr)
        iov = self.iov
        g.st(b, iov, 0, b.ptrtoint(g.at(b, at, 16), I64))
        g.st(b, iov, 8, c64(n))
        g.st(b, iov, 16, addr)
        g.st(b, iov, 24, c64(n))
        got = g.syscall(b, SYS_PROCESS_VM_READV, g.ld(b, self.thr, L.T_PID),
                        b.ptrtoint(iov, I64), c64(1), b.ptrtoint(g.at(b, iov, 16), I64),
                        c64(1), c64(0))
        g.st(b, at, 0, self.z64(b.icmp_signed("!=", got, c64(n))))

    def copy_str(self, dst: ir.Value, addr: ir.Value, n: int, fault: ir.Value) -> None:
        """Copies n bytes from addr with process_vm_readv on our own process: a bad
        pointer makes the syscall fail instead of faulting the target, and its address
        goes into the fault word (the user side reports it as the trap path does). The
        remote range is split at the page boundary so a string near the end of a mapping
        still reads up to it. The first byte not read is zeroed (the user side stops at a
        NUL)."""
        b, g = self.b, self.g
        b.store(ir.Constant(I8, 0), dst)
        g.st(b, fault, 0, c64(0))
        if n == 0:
            return
        go, done = self.block("copy"), self.block("copied")
        b.cbranch(b.icmp_unsigned("==", addr, c64(0)), done, go)
        b.position_at_end(go)
        iov = self.iov  # in the entry block: an alloca elsewhere would be a dynamic one
        first = b.sub(c64(L.PAGE), b.and_(addr, c64(L.PAGE - 1)))
        first = b.select(b.icmp_unsigned("<", first, c64(n)), first, c64(n))
        g.st(b, iov, 0, b.ptrtoint(dst, I64))
        g.st(b, iov, 8, c64(n))
        g.st(b, iov, 16, addr)
        g.st(b, iov, 24, first)
        g.st(b, iov, 32, b.add(addr, first))
        g.st(b, iov, 40, b.sub(c64(n), first))
        nrem = b.select(b.icmp_unsigned("<", first, c64(n)), c64(2), c64(1))
        pid = g.ld(b, self.thr, L.T_PID)
        got = g.syscall(b, SYS_PROCESS_VM_READV, pid, b.ptrtoint(iov, I64), c64(1),
                        b.ptrtoint(g.at(b, iov, 16), I64), nrem, c64(0))
        fault_word = fault
        fault, part, whole = self.block("fault"), self.block("part"), self.block("whole")
        b.cbranch(b.icmp_signed("<", got, c64(0)), fault, part)
        b.position_at_end(fault)
        b.atomic_rmw("add", g.at(b, self.shm, L.H_STR_FAULTS), c64(1), "monotonic")
        g.st(b, fault_word, 0, addr)
        b.branch(done)
        b.position_at_end(part)
        b.cbranch(b.icmp_signed("<", got, c64(n)), whole, done)
        b.position_at_end(whole)
        b.store(ir.Constant(I8, 0), g.at(b, dst, got))
        b.branch(done)
        b.position_at_end(done)

    # ------------------------------------------------------------------ expressions

    def nsecs(self) -> ir.Value:
        return self.hit_ns

    def expr(self, e: ast.Expr) -> ir.Value:
        b, g = self.b, self.g
        if isinstance(e, ast.Int):
            return c64(e.value)
        if isinstance(e, ast.Builtin):
            n = e.name
            if n == "pid":
                return g.ld(b, self.thr, L.T_PID)
            if n == "tid":
                return g.ld(b, self.thr, L.T_TID)
            if n == "nsecs":
                return self.nsecs()
            if n == "elapsed":
                return b.sub(self.nsecs(), g.ld(b, self.shm, L.H_START_NS))
            if n == "retval":
                return g.ld(b, self.f, FRAME["rax"])
            i = int(n[3:])
            if i < len(ARG_REGS):
                return g.ld(b, self.f, FRAME[ARG_REGS[i]])
            rsp = g.ld(b, self.f, FRAME["rsp"])
            return b.load(b.inttoptr(b.add(rsp, c64(8 * (i - 5))), PTR), typ=I64)
        if isinstance(e, ast.Positional):
            if e.count:
                return c64(len(g.params))
            if e.index > len(g.params):
                return c64(0)
            return c64(int(g.params[e.index - 1], 0))
        if isinstance(e, ast.Var):
            return b.load(self.var(e.name), typ=I64)
        if isinstance(e, ast.ThreadLocal):
            return g.ld(b, self.thr, g.lay.tl_offset(e.name))
        if isinstance(e, ast.MapRef):
            return self.map_read(e)
        if isinstance(e, ast.Unary):
            v = self.expr(e.operand)
            if e.op == "-":
                return b.sub(c64(0), v)
            if e.op == "!":
                return self.z64(b.icmp_unsigned("==", v, c64(0)))
            if e.op == "~":
                return b.xor(v, c64(-1))
            return v
        if isinstance(e, ast.IncDec):
            return self.incdec(e)
        if isinstance(e, ast.Binary):
            if e.op in ("&&", "||"):
                return self.logic(e)
            return self.binop(e.op, self.expr(e.left), self.expr(e.right))
        if isinstance(e, ast.Ternary):
            cond = self.expr(e.cond)
            t, o, j = self.block("t"), self.block("o"), self.block("j")
            b.cbranch(b.icmp_unsigned("!=", cond, c64(0)), t, o)
            b.position_at_end(t)
            tv = self.expr(e.then)
            tb = b.block
            b.branch(j)
            b.position_at_end(o)
            ov = self.expr(e.orelse)
            ob = b.block
            b.branch(j)
            b.position_at_end(j)
            phi = b.phi(I64)
            phi.add_incoming(tv, tb)
            phi.add_incoming(ov, ob)
            return phi
        if isinstance(e, ast.Cast):
            size, signed = CAST_TYPES[e.type.name]
            v = self.expr(e.operand)
            if size == 8:
                return v
            if e.type.name == "bool":
                return self.z64(b.icmp_unsigned("!=", v, c64(0)))
            narrow = b.trunc(v, ir.IntType(8 * size))
            return b.sext(narrow, I64) if signed else b.zext(narrow, I64)
        raise AssertionError(type(e).__name__)

    def z64(self, v: ir.Value) -> ir.Value:
        return self.b.zext(v, I64)

    def logic(self, e: ast.Binary) -> ir.Value:
        b = self.b
        left = b.icmp_unsigned("!=", self.expr(e.left), c64(0))
        lb = b.block
        rhs, j = self.block("rhs"), self.block("lj")
        if e.op == "&&":
            b.cbranch(left, rhs, j)
        else:
            b.cbranch(left, j, rhs)
        b.position_at_end(rhs)
        right = b.icmp_unsigned("!=", self.expr(e.right), c64(0))
        rb = b.block
        b.branch(j)
        b.position_at_end(j)
        phi = b.phi(I1)
        phi.add_incoming(ir.Constant(I1, int(e.op == "||")), lb)
        phi.add_incoming(right, rb)
        return self.z64(phi)

    def binop(self, op: str, a: ir.Value, c: ir.Value) -> ir.Value:
        b = self.b
        if op == "+":
            return b.add(a, c)
        if op == "-":
            return b.sub(a, c)
        if op == "*":
            return b.mul(a, c)
        if op == "&":
            return b.and_(a, c)
        if op == "|":
            return b.or_(a, c)
        if op == "^":
            return b.xor(a, c)
        if op == "<<":
            return b.shl(a, b.and_(c, c64(63)))
        if op == ">>":
            return b.ashr(a, b.and_(c, c64(63)))
        if op in ("/", "%"):
            # BPF: x / 0 == 0, x % 0 == x; INT64_MIN / -1 must not trap (idiv would).
            zero = b.icmp_unsigned("==", c, c64(0))
            m1 = b.icmp_signed("==", c, c64(-1))
            safe = b.select(b.or_(zero, m1), c64(1), c)
            if op == "/":
                q = b.sdiv(a, safe)
                q = b.select(m1, b.sub(c64(0), a), q)
                return b.select(zero, c64(0), q)
            r = b.srem(a, safe)
            r = b.select(m1, c64(0), r)
            return b.select(zero, a, r)
        cmp = {"==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}[op]
        return self.z64(b.icmp_signed(cmp, a, c))

    def incdec(self, e: ast.IncDec) -> ir.Value:
        b, g = self.b, self.g
        d = c64(1 if e.op == "++" else -1)
        t = e.target
        if isinstance(t, ast.Var | ast.ThreadLocal):
            if isinstance(t, ast.Var):
                p = self.var(t.name)
            else:
                p = g.at(b, self.thr, g.lay.tl_offset(t.name))
            old = b.load(p, typ=I64)
            new = b.add(old, d)
            b.store(new, p)
            return new if e.prefix else old
        assert isinstance(t, ast.MapRef)
        keys = self.key_words(t)
        ml = g.lay.maps[t.name]
        slot = self.find(t.name, keys, True)
        yes, join = self.block("slot"), self.block("noslot")
        start = b.block
        b.cbranch(b.icmp_unsigned("!=", b.ptrtoint(slot, I64), c64(0)), yes, join)
        b.position_at_end(yes)
        old = b.atomic_rmw("add", g.at(b, slot, ml.values_off + 8), d, "monotonic")
        self.publish(slot, ml.values_off)
        res = b.add(old, d) if e.prefix else old
        yb = b.block
        b.branch(join)
        b.position_at_end(join)
        phi = b.phi(I64)
        phi.add_incoming(c64(0), start)
        phi.add_incoming(res, yb)
        return phi

    def map_read(self, e: ast.MapRef) -> ir.Value:
        b, g = self.b, self.g
        keys = self.key_words(e)
        ml = g.lay.maps[e.name]
        slot = self.find(e.name, keys, False)
        yes, join = self.block("rd"), self.block("rdj")
        start = b.block
        b.cbranch(b.icmp_unsigned("!=", b.ptrtoint(slot, I64), c64(0)), yes, join)
        b.position_at_end(yes)
        vo = ml.values_off
        if ml.kind == "int":
            present = g.ld(b, slot, vo, "monotonic")
            val = g.ld(b, slot, vo + 8, "monotonic")
            v = b.select(b.icmp_unsigned("!=", present, c64(0)), val, c64(0))
        elif ml.kind in ("count", "sum"):
            v = c64(0)
            for s in range(L.SHARDS):
                v = b.add(v, g.ld(b, slot, vo + 8 * s * ml.stride, "monotonic"))
        else:  # min / max: combine the shards' encoded values
            enc = c64(0)
            seen = c64(0)
            for s in range(L.SHARDS):
                w = g.ld(b, slot, vo + 8 * s * ml.stride + 8, "monotonic")
                sn = g.ld(b, slot, vo + 8 * s * ml.stride, "monotonic")
                w = b.select(b.icmp_unsigned("!=", sn, c64(0)), w, c64(0))
                enc = b.select(b.icmp_unsigned(">", w, enc), w, enc)
                seen = b.or_(seen, sn)
            if ml.kind == "min":
                enc = b.xor(enc, c64(-1))
            v = b.select(b.icmp_unsigned("!=", seen, c64(0)), b.xor(enc, c64(SIGN)), c64(0))
        yb = b.block
        b.branch(join)
        b.position_at_end(join)
        phi = b.phi(I64)
        phi.add_incoming(c64(0), start)
        phi.add_incoming(v, yb)
        return phi


def generate(splits: dict[int, ClauseSplit], lay: L.Layout, params: tuple[str, ...],
             shm_maps: dict[str, tuple[str, tuple[str, ...], int, tuple[int, int, int] | None]],
             max_keys: int = 0) -> Program:
    """The module for these splits. shm_maps: name -> (kind, key kinds, hist bits, lhist
    args) for every map the in-target parts touch."""
    for name, (kind, key_kinds, bits, largs) in sorted(shm_maps.items()):
        lay.add_map(name, kind, key_kinds, bits, largs, max_keys)
    for s in splits.values():
        if s.reason is None:
            for node in _thread_locals(s):
                lay.tl_offset(node)
    return Gen(splits, lay, params).build()


_NO_MAP = L.MapLayout("", -1, "int", 0, 0, 1, 1)


def _calls_time(ev: Event) -> bool:
    """time() formats the hit's own timestamp, which the record then carries."""
    st = ev.stmt
    return isinstance(st, ast.ExprStmt) and isinstance(st.expr, ast.Call) \
        and st.expr.name == "time"


def _thread_locals(s: ClauseSplit) -> list[str]:
    return sorted({n.name for n in target_nodes(s) if isinstance(n, ast.ThreadLocal)})

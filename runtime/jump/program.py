"""JumpProgram: a plan's in-target program, compiled once, and its shared-area setup.

The tracer side of the seam with the mechanics (trampolines, injection, patching): the
machine code and its entry offsets, the size of the shared area, and the writes into a
view of that area (header, site table, thread entries). One program serves every process
of a session: the area's base is an argument of each entry, never baked in.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from runtime.jump import layout as L
from runtime.jump.compile import MachineCode, compile_ir
from runtime.jump.irgen import Program, generate
from runtime.jump.split import ClauseSplit, map_decls, settle, split_plan, target_nodes
from uplang import ast
from uplang.plan import Plan

AGGS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")
STACK_MARGIN = 64  # bytes of slack over the measured use, for the trampolines' sums


@dataclass
class JumpProgram:
    """A compiled in-target program. `code` runs from anywhere (PIC, no relocations)."""

    plan: Plan
    splits: dict[int, ClauseSplit]
    program: Program
    machine: MachineCode
    drop: bool = False
    clock: tuple[int, int, int, int] | None = field(default=None, repr=False)

    # ---- facts for the mechanics

    @property
    def code(self) -> bytes:
        return self.machine.code

    @property
    def entries(self) -> dict[str, int]:
        return self.machine.entries

    @property
    def max_stack(self) -> int:
        return self.machine.max_stack + STACK_MARGIN

    @property
    def layout(self) -> L.Layout:
        return self.program.layout

    @property
    def shm_size(self) -> int:
        return self.program.layout.size

    def reason(self, clause_index: int) -> str | None:
        """Why the clause keeps the trap path (None: it runs in the target)."""
        s = self.splits.get(clause_index)
        return "not a probe clause" if s is None else s.reason

    def in_target(self, clause_index: int) -> bool:
        s = self.splits.get(clause_index)
        return s is not None and s.reason is None and clause_index in self.program.clause_bits

    def with_trap_sites(self, clauses: set[int] | frozenset[int]) -> dict[int, str]:
        """These in-target clauses keep the trap path at some of their sites. Returns the
        clauses that must now keep it at every site, with the reason (maps that one side
        would read while the other writes them), and stops running them in the target:
        add_site ignores them from now on. Call before placing sites."""
        before = {i for i, s in self.splits.items() if s.reason is None}
        self.splits = settle(self.plan, self.splits, frozenset(clauses))
        return {i: self.splits[i].reason or "" for i in sorted(before)
                if self.splits[i].reason is not None}

    # ---- writes into a view of the shared area

    def init_shm(self, view: memoryview, tracer_pid: int | None = None,
                 start_ns: int | None = None) -> None:
        """Header of a fresh (zeroed) area: magic, size, flags, the tracer's pid, the
        clock calibration."""
        mult, shift, base_tsc, base_ns = self.clock_params()
        words = {
            L.H_MAGIC: L.MAGIC, L.H_VERSION: L.VERSION, L.H_SIZE: self.shm_size,
            L.H_FLAGS: L.FLAG_DROP if self.drop else 0,
            L.H_TRACER_PID: os.getpid() if tracer_pid is None else tracer_pid,
            L.H_CLOCK_MULT: mult, L.H_CLOCK_SHIFT: shift, L.H_CLOCK_BASE_TSC: base_tsc,
            L.H_CLOCK_BASE_NS: base_ns,
            L.H_START_NS: time.monotonic_ns() if start_ns is None else start_ns,
        }
        for off, v in words.items():
            struct.pack_into("<Q", view, off, v & 0xFFFFFFFFFFFFFFFF)

    def add_site(self, view: memoryview, site_id: int, clauses: tuple[int, ...]) -> None:
        """Site `site_id` runs these plan clauses (entry clauses from jp_hit, return
        clauses from jp_ret_exit); clauses that are not in-target are ignored."""
        if not 0 <= site_id < L.MAX_SITES:
            raise ValueError(f"site id {site_id} out of range")
        entry = ret = 0
        for c in clauses:
            bit = self.program.clause_bits.get(c)
            if bit is None or not self.in_target(c):
                continue
            if self.splits[c].kind == "return":
                ret |= 1 << bit
            else:
                entry |= 1 << bit
        struct.pack_into("<QQ", view, L.SITES_OFF + site_id * L.SITE_SIZE, entry, ret)

    def remove_site(self, view: memoryview, site_id: int) -> None:
        struct.pack_into("<QQ", view, L.SITES_OFF + site_id * L.SITE_SIZE, 0, 0)

    def _thread_entries(self, view: memoryview) -> Iterator[tuple[int, tuple[int, ...]]]:
        lay = self.layout
        for i in range(L.MAX_THREADS):
            off = lay.threads_off + i * lay.thread_size
            yield off, struct.unpack_from("<QQQ", view, off)

    def bind_thread(self, view: memoryview, fs_base: int, tid: int, pid: int) -> None:
        """A new thread's entry (at its first stop the tracer knows fs_base and tid): an
        entry a dead thread left with the same thread pointer is reset first, so a reused
        TLS block never inherits the old thread's tid, self-> values or shadow stack."""
        self.forget_fs_base(view, fs_base)
        lay = self.layout
        mask = L.MAX_THREADS - 1
        h = ((fs_base * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> (64 - mask.bit_length())
        for i in range(L.MAX_THREADS):
            off = lay.threads_off + ((h + i) & mask) * lay.thread_size
            (k,) = struct.unpack_from("<Q", view, off)
            if k <= 1:
                view[off + L.T_TL: off + lay.thread_size] = bytes(lay.thread_size - L.T_TL)
                # The ordinal is left to the thread (one lock xadd at its first hit): the
                # tracer has no atomic add on the area, and target threads take ordinals
                # concurrently.
                struct.pack_into("<QQQQ", view, off + L.T_TID, tid, pid, L.NO_ORDINAL, 0)
                struct.pack_into("<Q", view, off, fs_base)
                return

    def forget_fs_base(self, view: memoryview, fs_base: int) -> None:
        for off, (k, _, _) in self._thread_entries(view):
            if k == fs_base:
                struct.pack_into("<Q", view, off, 1)  # tombstone: lookups walk past it

    def forget_thread(self, view: memoryview, tid: int) -> None:
        """The thread is gone: its entry becomes a tombstone, free for a new thread."""
        for off, (k, t, _) in self._thread_entries(view):
            if k > 1 and t == tid:
                struct.pack_into("<Q", view, off, 1)

    def thread_state(self, view: memoryview, tid: int) -> tuple[dict[str, int], list[tuple[int, int, int]]]:
        """(self-> values, shadow stack [(return address, slot, site)]) of a thread."""
        lay = self.layout
        for off, (k, t, _) in self._thread_entries(view):
            if k > 1 and t == tid:
                tl = {n: struct.unpack_from("<q", view, off + L.T_TL + 8 * i)[0]
                      for i, n in enumerate(lay.tl_names)}
                depth = struct.unpack_from("<Q", view, off + L.T_DEPTH)[0]
                shadow = [struct.unpack_from("<QQQ", view, off + lay.shadow_off + 24 * i)
                          for i in range(min(depth, L.SHADOW_DEPTH))]
                return tl, shadow
        return {}, []

    def copy_thread_state(self, src: memoryview, dst: memoryview, from_tid: int,
                          to_tid: int, to_pid: int) -> None:
        """A fork child's thread continues where the parent's left off (self-> values and
        pending returns) in the child's own area."""
        lay = self.layout
        for off, (k, t, _) in self._thread_entries(src):
            if k > 1 and t == from_tid:
                self.bind_thread(dst, k, to_tid, to_pid)
                for doff, (dk, dt, _) in self._thread_entries(dst):
                    if dk == k and dt == to_tid:
                        dst[doff + L.T_DEPTH: doff + lay.thread_size] = \
                            src[off + L.T_DEPTH: off + lay.thread_size]
                return

    def pending_returns(self, view: memoryview) -> list[tuple[int, int, int]]:
        """Every armed return: (tid, stack slot, original return address), for detach."""
        out = []
        lay = self.layout
        for off, (k, t, _) in self._thread_entries(view):
            if k > 1:
                depth = struct.unpack_from("<Q", view, off + L.T_DEPTH)[0]
                for i in range(min(depth, L.SHADOW_DEPTH)):
                    ra, slot, _site = struct.unpack_from("<QQQ", view,
                                                         off + lay.shadow_off + 24 * i)
                    out.append((t, slot, ra))
        return out

    # ---- clock

    def clock_params(self) -> tuple[int, int, int, int]:
        """(mult, shift, base_tsc, base_ns): ns = base_ns + ((tsc - base_tsc) * mult >>
        shift), measured once per program against CLOCK_MONOTONIC."""
        if self.clock is None:
            self.clock = calibrate_tsc()
        return self.clock


def _tsc_reader() -> tuple[mmap.mmap, Callable[[], int]]:
    """rdtsc from the tracer's own process: six bytes of code in an executable page."""
    code = bytes.fromhex("0f31" "48c1e220" "4809d0" "c3")  # rdtsc; shl rdx,32; or rax,rdx; ret
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    return buf, ctypes.CFUNCTYPE(ctypes.c_uint64)(addr)


def _pair(rd: Callable[[], int]) -> tuple[int, int]:
    """A (tsc, monotonic ns) pair read as close together as the interpreter allows."""
    best = None
    for _ in range(5):
        a = rd()
        ns = time.monotonic_ns()
        b = rd()
        if best is None or b - a < best[0]:
            best = (b - a, (a + b) // 2, ns)
    assert best is not None
    return best[1], best[2]


def calibrate_tsc(window_ns: int = 20_000_000) -> tuple[int, int, int, int]:
    buf, rd = _tsc_reader()
    try:
        t0, n0 = _pair(rd)
        end = n0 + window_ns
        while time.monotonic_ns() < end:
            pass
        t1, n1 = _pair(rd)
    finally:
        del rd
        buf.close()
    shift = 32
    mult = ((n1 - n0) << shift) // max(1, t1 - t0)
    return mult, shift, t1, n1


def shm_maps(plan: Plan, splits: dict[int, ClauseSplit]) -> dict[str, tuple]:
    """Maps the in-target parts touch: name -> (kind, key kinds, hist bits, lhist args)."""
    decls = map_decls(plan)
    out: dict[str, tuple] = {}
    for s in splits.values():
        if s.reason is not None:
            continue
        for n in target_nodes(s):
            if isinstance(n, ast.Assign) and isinstance(n.target, ast.MapRef):
                ref, val = n.target, n.value
            elif isinstance(n, ast.MapRef):
                ref, val = n, None
            elif isinstance(n, ast.IncDec) and isinstance(n.target, ast.MapRef):
                ref, val = n.target, None
            elif isinstance(n, ast.Call) and n.name == "delete" and n.args and \
                    isinstance(n.args[0], ast.MapRef):
                ref, val = n.args[0], None
            else:
                continue
            d = decls[ref.name]
            bits, largs = 0, d.lhist_args
            consts = [a.value for a in val.args if isinstance(a, ast.Int)] \
                if isinstance(val, ast.Call) else []
            if isinstance(val, ast.Call) and val.name == "hist" and len(val.args) > 1:
                bits = consts[-1]  # the split admits constant bits only
            if isinstance(val, ast.Call) and val.name == "lhist":
                lo, hi, step = consts[-3:]
                largs = (lo, hi, step)
            if ref.name not in out or val is not None:
                out[ref.name] = (d.value_kind, d.key_kinds, bits, largs)
    return out


def build_program(plan: Plan, *, max_strlen: int = 64, drop: bool = False,
                  ring_records: int = L.DEFAULT_RING_RECORDS) -> JumpProgram:
    """Splits the plan, generates and compiles the in-target program."""
    max_keys = int(plan.config.get("max_map_keys", 4096) or 0)
    splits = split_plan(plan, max_strlen)
    ok = sorted(i for i, s in splits.items() if s.reason is None)
    for i in ok[L.MAX_CLAUSES:]:
        s = splits[i]
        splits[i] = ClauseSplit(i, s.kind, f"more than {L.MAX_CLAUSES} in-target clauses")
    lay = L.Layout(ring_records=ring_records)
    prog = generate(splits, lay, plan.params, shm_maps(plan, splits), max_keys)
    machine = compile_ir(str(prog.module))
    return JumpProgram(plan, splits, prog, machine, drop)

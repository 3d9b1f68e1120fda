"""The per-session run-time support that compiled handlers call into.

`HandlerSupport` owns what outlives one hit: the maps, thread-locals, the output sink, the
start time, per-process facts (ppid/uid/gid), and the effect functions. `namespace()` hands
the generated code its globals: every name a handler uses is bound once, so a hit does no
lookups beyond a dict access. Effects (printing, system(), sleep(), cat(), print(@map))
capture their inputs at the hit and queue the slow part with ctx.defer().
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal as signals
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from runtime import procfs
from runtime.cint import c_div, c_mod, cast, lshr, s64, shl, shr, wrap_s64
from runtime.demangle import demangle
from runtime.errors import UprobeError
from runtime.handlers.contexts import Hit
from runtime.handlers.mapops import MapOps, snapshot
from runtime.handlers.records import decode_array, decode_record
from runtime.handlers.values import decode_cstr, ntop, str_index, strncmp
from runtime.output.timefmt import monotonic_ns_to_epoch_ns, time_text
from runtime.output.values import Buf, CArray, Frame, Pointer, Record, Stack, Timestamp, Usym
from uplang.plan import MemberLayout, TypeLayout


@dataclass
class HandlerSupport:
    """Session-wide state and effects of compiled handlers.

    emit: writes one finished output event (see runtime.handlers.emit.Emitter).
    stop: ends the session (exit()); thread-safe.
    """

    maps: Any  # runtime.maps.MapStore
    emitter: Any  # runtime.handlers.emit.Emitter
    stop: Callable[[], None]
    params: tuple[str, ...] = ()
    max_strlen: int = 64
    unsafe: bool = False
    cpid: int = 0
    start_ns: int = field(default_factory=time.monotonic_ns)
    tls: dict[int, dict[str, object]] = field(default_factory=dict)
    tls_prune_at: int = 64
    stopped: list[bool] = field(default_factory=lambda: [False])  # a cell the code reads
    proc_cache: dict[tuple[int, str], int] = field(default_factory=dict)
    proc_texts: dict[tuple[int, str], str] = field(default_factory=dict)
    uaddr_cache: dict[tuple[int, str], int] = field(default_factory=dict)
    frame_cache: dict[tuple[int, int], Frame] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    uaddr_lookup: Callable[[int, str], int] | None = None
    stack_mode: str = "bpftrace"  # config stack_mode: how ustack values print
    exit_code: int = 0  # exit(N): the tool's exit status (the first exit() wins)
    demangle: bool = True  # C++ names in func/usym/ustack readable (--no-demangle: raw)
    # Brings maps kept elsewhere (the jump path's shared area) into `maps` before a print.
    sync_maps: Callable[[], None] = field(default=lambda: None)

    # ------------------------------------------------------------------ thread-locals

    def tls_of(self, ctx: Hit) -> dict[str, object]:
        d = self.tls.get(ctx.tid)
        if d is None:
            if len(self.tls) >= self.tls_prune_at:
                self.prune_threads(ctx.pid)
            d = self.tls[ctx.tid] = {}
        return d

    def prune_threads(self, pid: int) -> None:
        """Drops thread-locals of threads that no longer exist. Both drivers hook
        `thread_exited` to Session.on_thread_exit; this is the safety net for a session
        that reports no exits (a library user's), run when the table has doubled since
        the last pass: amortised O(1) per new thread, the table bounded by live threads."""
        for tid in list(self.tls):
            if not procfs.has_task(pid, tid) and not procfs.alive(tid):
                del self.tls[tid]
        self.tls_prune_at = max(64, 2 * len(self.tls))

    def thread_exited(self, pid: int, tid: int) -> None:
        """Session.on_thread_exit: drops `self->` variables of a thread that is gone (tids
        are reused)."""
        self.tls.pop(tid, None)

    def func(self, ctx: Hit) -> str:
        """`func`: the probed function; in a profile sample, the function rip is in."""
        probe = ctx.probe
        if getattr(probe, "kind", "") == "profile":
            try:
                rip = ctx.regs.rip
            except (UprobeError, AttributeError):
                return ""
            return self.frame(ctx, rip).symbol or ""
        name = getattr(probe, "symbol", "") or ""
        return demangle(name) if self.demangle else name

    @staticmethod
    def tl_add(tl: dict[str, object], name: str, delta: int, post: bool) -> int:
        old = tl.get(name, 0)
        assert isinstance(old, int)
        tl[name] = wrap_s64(old + delta)
        return old if post else wrap_s64(old + delta)

    # ------------------------------------------------------------------ target reads

    def error(self, ctx: Hit, message: str) -> None:
        """An error event at the hit: reported in order, the hit goes on."""
        ctx.defer(partial(self.emitter.error, message))

    def rd_int(self, ctx: Hit, addr: int, size: int, signed: bool) -> int:
        try:
            raw = ctx.read(addr, size)
        except (UprobeError, OSError):
            self.error(ctx, f"failed to read {size} bytes at 0x{addr & 0xFFFFFFFFFFFFFFFF:x}")
            return 0
        return int.from_bytes(raw, "little", signed=signed)

    def rd_record(self, ctx: Hit, addr: int, layout: TypeLayout,
                  layouts: dict[str, TypeLayout]) -> Record:
        """A struct/union value: one read of its bytes at the hit, decoded."""
        try:
            raw = ctx.read(addr, layout.size)
        except (UprobeError, OSError):
            self.error(ctx, f"failed to read {layout.size} bytes at "
                            f"0x{addr & 0xFFFFFFFFFFFFFFFF:x}")
            raw = bytes(layout.size)
        return decode_record(raw, layout, layouts)

    def rd_array(self, ctx: Hit, addr: int, elem: MemberLayout, count: int,
                 layouts: dict[str, TypeLayout]) -> CArray:
        size = elem.size * count
        try:
            raw = ctx.read(addr, size)
        except (UprobeError, OSError):
            self.error(ctx, f"failed to read {size} bytes at 0x{addr & 0xFFFFFFFFFFFFFFFF:x}")
            raw = bytes(size)
        return decode_array(raw, elem, count, layouts)

    def rd_bits(self, ctx: Hit, addr: int, size: int, bit_offset: int, bits: int,
                signed: bool) -> int:
        raw = self.rd_int(ctx, addr, size, False) >> bit_offset
        raw &= (1 << bits) - 1
        if signed and raw >> (bits - 1):
            raw -= 1 << bits
        return raw

    def rd_str(self, ctx: Hit, addr: int, size: int) -> str:
        try:
            raw = ctx.read(addr, size)
        except (UprobeError, OSError):
            self.error(ctx, f"failed to read string at 0x{addr & 0xFFFFFFFFFFFFFFFF:x}")
            return ""
        return decode_cstr(raw)

    def str_(self, ctx: Hit, addr: int, n: int | None) -> str:
        limit = self.max_strlen if n is None else max(0, min(n, self.max_strlen))
        if isinstance(addr, str):
            return addr[:limit]
        if addr == 0:
            # NULL is an answer, not a fault (getenv, strchr, ...): "" as bpftrace gives,
            # without an error event for every such hit.
            return ""
        try:
            raw = ctx.read_str(addr, limit)
        except (UprobeError, OSError):
            self.error(ctx, f"str(): failed to read a string at 0x{addr & 0xFFFFFFFFFFFFFFFF:x}")
            return ""
        # bpftrace keeps room for the terminating NUL within max_strlen.
        return decode_cstr(raw)[: max(0, limit - 1) if n is None else limit]

    def buf(self, ctx: Hit, addr: int, n: int) -> Buf:
        n = max(0, min(n, self.max_strlen))
        try:
            return Buf(bytes(ctx.read(addr, n)))
        except (UprobeError, OSError):
            self.error(ctx, f"buf(): failed to read {n} bytes at 0x{addr & 0xFFFFFFFFFFFFFFFF:x}")
            return Buf(b"")

    def ustack(self, ctx: Hit, limit: int, mode: str | None = None) -> Stack:
        """ustack, ustack(N), ustack(MODE[, N]): MODE overrides config stack_mode. A hit
        context captures the stack now and names its frames when printed."""
        mode = mode or self.stack_mode
        capture = getattr(ctx, "stack_value", None)
        if capture is not None:
            try:
                return capture(limit, mode, self.demangle)
            except (UprobeError, OSError):
                return Stack((), mode)
        try:
            addrs = ctx.ustack(limit)
        except (UprobeError, OSError):
            addrs = []
        return Stack(tuple(self.frame(ctx, a) for a in addrs[:limit]), mode)

    def frame(self, ctx: Hit, addr: int) -> Frame:
        """Symbolised once per (process, address): stacks repeat, symbolising is not cheap."""
        key = (ctx.pid, addr)
        f = self.frame_cache.get(key)
        if f is None:
            f = frame_of(ctx, addr)
            if self.demangle and f.symbol is not None and f.symbol.startswith("_Z"):
                f = dataclasses.replace(f, symbol=demangle(f.symbol))
            self.frame_cache[key] = f
        return f

    def usym(self, ctx: Hit, addr: int) -> Usym:
        f = self.frame(ctx, addr)
        return Usym(addr, f.symbol, f.offset, f.module)

    def uaddr(self, ctx: Hit, name: str) -> int:
        key = (ctx.pid, name)
        if key not in self.uaddr_cache:
            if self.uaddr_lookup is None:
                return 0
            self.uaddr_cache[key] = self.uaddr_lookup(ctx.pid, name)
        return self.uaddr_cache[key]

    def proc_field(self, pid: int, name: str) -> int:
        """ppid/uid/gid from /proc/PID/status and the cgroup id, read once per process."""
        key = (pid, name)
        cached = self.proc_cache.get(key)
        if cached is not None:
            return cached
        if name == "cgroup":
            value = procfs.cgroup_id(pid)
            self.proc_cache[key] = value
            return value
        fields = procfs.status(pid)
        if not fields:
            return 0
        for tag in ("PPid", "Uid", "Gid"):
            self.proc_cache[(pid, tag)] = int(fields.get(tag, "0").split()[0])
        return self.proc_cache.get(key, 0)

    def proc_text(self, pid: int, name: str) -> str:
        """pcomm (the parent's comm) and leader_comm, read once per process."""
        key = (pid, name)
        cached = self.proc_texts.get(key)
        if cached is None:
            if name == "pcomm":
                cached = procfs.comm(self.proc_field(pid, "PPid"), None)
            else:
                cached = procfs.comm(pid, None)
            self.proc_texts[key] = cached
        return cached

    def join(self, ctx: Hit, addr: int, sep: str) -> None:
        """join(argv): up to 16 strings from a NULL-terminated char* array, at the hit."""
        words: list[str] = []
        for i in range(16):
            p = self.rd_int(ctx, addr + 8 * i, 8, False)
            if not p:
                break
            words.append(self.str_(ctx, p, None))
        ctx.defer(partial(self.emitter.text, sep.join(words) + "\n", "join"))

    # ------------------------------------------------------------------ effects

    def printf(self, ctx: Hit, fmt: Any, args: tuple) -> None:
        ctx.defer(partial(self.emitter.printf, fmt, args))

    def print_value(self, ctx: Hit, value: object) -> None:
        ctx.defer(partial(self.emitter.value, value))

    def print_map(self, ctx: Hit, m: Any, top: int, div_: int) -> None:
        self.sync_maps()
        snap = snapshot(m)
        ctx.defer(partial(self.emitter.map, snap, top, div_))

    def time_(self, ctx: Hit, fmt: str) -> None:
        ctx.defer(partial(self.emitter.text, time_text(fmt, time.time_ns()), "time"))

    @staticmethod
    def strftime(fmt: str, nsecs: int) -> Timestamp:
        # nsecs are CLOCK_MONOTONIC like the hit timestamps; move them onto the wall clock.
        return Timestamp(fmt, monotonic_ns_to_epoch_ns(nsecs))

    def cat(self, ctx: Hit, fmt: Any, args: tuple) -> None:
        path = self.emitter.format(fmt, args)

        def run() -> None:
            try:
                with open(path, errors="replace") as f:
                    data = f.read()
            except OSError as exc:
                self.emitter.error(f"cat(): {path}: {exc.strerror}")
                return
            self.emitter.text(data)

        ctx.defer(run)

    def system(self, ctx: Hit, fmt: Any, args: tuple) -> None:
        cmd = self.emitter.format(fmt, args)

        def run() -> None:
            done = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  errors="replace", check=False)
            if done.stdout:
                self.emitter.text(done.stdout, "syscall")
            if done.stderr:
                self.emitter.stderr(done.stderr)

        ctx.defer(run)

    @staticmethod
    def sleep(ctx: Hit, ms: int) -> None:
        ctx.defer(partial(time.sleep, max(0, ms) / 1000))

    def exit_(self, ctx: Hit, code: int = 0) -> None:
        # Hits that the engine reports after exit() must not run their handlers (bpftrace
        # stops at once); END still runs, its code does not look at the cell.
        if not self.stopped[0]:
            # As a process exit status: the low 8 bits.
            self.exit_code = code & 0xFF
        self.stopped[0] = True
        self.stop()

    def signal(self, ctx: Hit, sig: int | str) -> None:
        if isinstance(sig, str):
            name = sig if sig.startswith("SIG") else "SIG" + sig
            sig = int(getattr(signals.Signals, name, 0))
        if sig <= 0:
            self.error(ctx, "signal(): unknown signal")
            return
        try:
            # At the hit the thread is stopped: the signal is delivered when it runs on.
            os.kill(ctx.pid, sig)
        except OSError as exc:
            self.error(ctx, f"signal(): {exc.strerror}")

    def loop_cap(self, ctx: Hit, limit: int) -> None:
        self.error(ctx, f"while loop stopped after {limit} iterations (max_loop_iterations)")

    # ------------------------------------------------------------------ namespace

    def namespace(self) -> dict[str, object]:
        """Globals of the generated handler functions."""
        return {
            "_w": wrap_s64, "_s64": s64, "_div": c_div, "_mod": c_mod, "_cast": cast,
            "_shl": shl, "_shr": shr, "_lshr": lshr,
            "_strncmp": strncmp, "_str_index": str_index,
            "_rd_int": self.rd_int, "_rd_str": self.rd_str, "_str": self.str_,
            "_rd_record": self.rd_record, "_rd_array": self.rd_array, "_rd_bits": self.rd_bits,
            "_Record": Record, "_dwreg": _dwarf_register,
            "_buf": self.buf, "_ustack": self.ustack, "_usym": self.usym,
            "_uaddr": self.uaddr, "_proc_field": self.proc_field,
            "_proc_text": self.proc_text, "_ntop": ntop, "_join": self.join,
            "_printf": self.printf, "_print_value": self.print_value,
            "_print_map": self.print_map, "_time": self.time_, "_strftime": self.strftime,
            "_cat": self.cat, "_system": self.system, "_sleep": self.sleep,
            "_exit": self.exit_, "_signal": self.signal, "_loop_cap": self.loop_cap,
            "_tls_of": self.tls_of, "_tl_add": self.tl_add, "_stopped": self.stopped,
            "_start_ns": lambda: self.start_ns, "_cpid": lambda: self.cpid,
            "_rand": lambda: self.rng.getrandbits(32),
            "_func": self.func, "_probe_name": _probe_name, "_ptr": _pointer,
            **MapOps(self.maps).namespace(),
        }


def frame_of(ctx: Hit, addr: int) -> Frame:
    """One symbolised frame; the context answers "name+off", (name, off) or None."""
    try:
        sym = ctx.symbolize(addr)
    except (UprobeError, OSError, ValueError):
        sym = None
    if isinstance(sym, tuple):
        return Frame(sym[0], int(sym[1]), addr)
    if isinstance(sym, str) and sym and not sym.startswith("["):
        name, _, off = sym.rpartition("+")
        if name and off.isdigit():
            return Frame(name, int(off), addr)
        if name and off.startswith("0x"):
            return Frame(name, int(off, 16), addr)
        return Frame(sym, 0, addr)
    return Frame(None, 0, addr)


# DWARF register numbers (x86-64 psABI) -> user_regs_struct fields.
_DWARF_REGS = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
               "r11", "r12", "r13", "r14", "r15", "rip")


def _dwarf_register(ctx: Hit, regno: int) -> int:
    return int(getattr(ctx.regs, _DWARF_REGS[regno]))


def _pointer(value: int) -> Pointer:
    return Pointer(value & 0xFFFFFFFFFFFFFFFF)


def _probe_name(ctx: Hit) -> str:
    return getattr(ctx.probe, "label", "") or ""

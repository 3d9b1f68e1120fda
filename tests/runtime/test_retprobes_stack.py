"""The pending-return stack on its own: chained entries, dead frames, unwinder hooks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runtime import retprobes
from runtime.errors import TargetError
from runtime.threads import Process, Thread

TRAMP = 0x7000_0000


class FakeMem:
    """A stack as a dict of 8-byte words."""

    def __init__(self) -> None:
        self.words: dict[int, int] = {}

    def read_u64(self, addr: int) -> int:
        return self.words[addr]

    def write_u64(self, addr: int, value: int) -> None:
        self.words[addr] = value


def _setup():
    mem = FakeMem()
    proc = Process(pid=1, mem=mem, spawned=True)  # type: ignore[arg-type]
    proc.xol.trampoline = TRAMP
    th = Thread(tid=1, proc=proc)
    return proc, th, mem


def _enter(proc, th, mem, rsp, ret, name):
    mem.words.setdefault(rsp, ret)
    bp = SimpleNamespace(returns=[name])
    retprobes.on_entry(proc, th, SimpleNamespace(rsp=rsp), bp)


def _ret(th, rsp_after):
    regs = SimpleNamespace(rsp=rsp_after, rip=TRAMP + 1)
    done = retprobes.on_return(th, regs)
    return [d.probes[0] for d in done], regs.rip


def test_nested_calls_return_in_order():
    proc, th, mem = _setup()
    _enter(proc, th, mem, 0x1000, 0xA, "outer")
    _enter(proc, th, mem, 0xF00, 0xB, "inner")
    assert mem.words == {0x1000: TRAMP, 0xF00: TRAMP}
    assert _ret(th, 0xF08) == (["inner"], 0xB)
    assert _ret(th, 0x1008) == (["outer"], 0xA)
    assert th.returns == []


def test_chained_tail_call_shares_the_slot():
    proc, th, mem = _setup()
    _enter(proc, th, mem, 0x1000, 0xA, "f")
    _enter(proc, th, mem, 0x1000, 0xA, "g")  # [rsp] already holds the trampoline
    assert _ret(th, 0x1008) == (["g", "f"], 0xA)


def test_frames_left_by_longjmp_are_dropped():
    proc, th, mem = _setup()
    _enter(proc, th, mem, 0x1000, 0xA, "main_child")
    _enter(proc, th, mem, 0xE00, 0xB, "jumped_from")
    # longjmp back above 0xE00; a new call reuses the same depth: the stale entry goes.
    mem.words[0xE00] = 0xC
    _enter(proc, th, mem, 0xE00, 0xC, "again")
    assert [r.probes[0] for r in th.returns] == ["main_child", "again"]
    # Or the caller returns directly: entries below it are dead.
    _enter(proc, th, mem, 0xD00, 0xD, "deeper")
    assert _ret(th, 0x1008) == (["main_child"], 0xA)


def test_unknown_return_is_an_error():
    proc, th, mem = _setup()
    with pytest.raises(TargetError, match="no pending return"):
        _ret(th, 0x1008)


def test_unwinder_disarms_and_catch_rearms_survivors():
    proc, th, mem = _setup()
    _enter(proc, th, mem, 0x1000, 0xA, "outer")
    _enter(proc, th, mem, 0xF00, 0xB, "middle")
    retprobes.disarm(proc, th)
    assert mem.words == {0x1000: 0xA, 0xF00: 0xB}
    # Caught in outer's frame: __cxa_begin_catch's return slot lies below outer's frame.
    retprobes.after_catch(proc, th, 0xF00)
    assert [r.probes[0] for r in th.returns] == ["outer"]
    assert mem.words == {0x1000: TRAMP, 0xF00: 0xB}
    retprobes.restore_all(proc, th)
    assert mem.words[0x1000] == 0xA and th.returns == []

"""SemaphoreTable bookkeeping against real memory (a counter in this very process, written
through /proc/self/mem as the tracer writes a target's)."""

from __future__ import annotations

import ctypes
import os

import pytest

from runtime.memory import ProcessMemory
from runtime.procmaps import Mapping
from runtime.semaphores import SemaphoreTable, addresses

KEY = (1, 2, 0x40)  # (dev, ino, file offset of the counter)


@pytest.fixture
def counter():
    value = ctypes.c_uint16(0)
    mem = ProcessMemory(os.getpid())
    addr = ctypes.addressof(value)
    # A writable mapping of file (1, 2) whose offset 0x40 is the counter.
    maps = [Mapping(addr - 0x40, addr + 0x1000, "rw-p", 0, 1, 2, "/lib/fake.so")]
    yield value, mem, addr, maps
    mem.close()


def test_raised_once_per_process_and_lowered_when_unneeded(counter):
    value, mem, addr, maps = counter
    table = SemaphoreTable()
    table.sync(1, mem, maps, {KEY})
    table.sync(1, mem, maps, {KEY})
    assert value.value == 1 and table.count(1) == 1
    table.sync(1, mem, maps, set())
    assert value.value == 0 and table.count(1) == 0


def test_the_programs_own_value_is_kept(counter):
    value, mem, _, maps = counter
    value.value = 5
    table = SemaphoreTable()
    table.sync(7, mem, maps, {KEY})
    assert value.value == 6
    value.value = 0  # the program reset it meanwhile: never below zero
    table.release(7, mem)
    assert value.value == 0
    value.value = 0xFFFF
    table.sync(7, mem, maps, {KEY})
    assert value.value == 0  # a 16-bit counter wraps as the program's own increments do


def test_fork_vfork_exec_and_unmapping(counter):
    value, mem, _, maps = counter
    table = SemaphoreTable()
    table.sync(1, mem, maps, {KEY})
    table.fork(1, 2, vfork=False)
    assert table.count(2) == 1  # the child's copy is already raised: ours to lower
    table.fork(1, 3, vfork=True)
    table.sync(3, mem, maps, {KEY})
    assert table.count(3) == 0 and value.value == 1  # shared memory: the parent's raise
    table.forget(3)
    table.sync(3, mem, maps, {KEY})
    assert table.count(3) == 1 and value.value == 2  # after its exec, a process of its own
    table.release(3, mem)
    table.sync(1, mem, [], {KEY})  # unmapped: forgotten, nothing written
    assert table.count(1) == 0 and value.value == 1


def test_only_writable_mappings_hold_the_counter():
    text = Mapping(0x1000, 0x3000, "r-xp", 0, 1, 2, "/lib/fake.so")
    data = Mapping(0x5000, 0x6000, "rw-p", 0x0, 1, 2, "/lib/fake.so")
    other = Mapping(0x8000, 0x9000, "rw-p", 0x0, 1, 3, "/lib/other.so")
    assert addresses([text, data, other], KEY) == [0x5040]

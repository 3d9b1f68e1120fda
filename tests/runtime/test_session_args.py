"""Arguments, strings and return values as handlers see them."""

from __future__ import annotations

import pytest
from programs.rt_support import Spawned, placement, signed, uninstrumented

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def args_prog(builder):
    return builder.build("rt_args.c", "-O1")


def test_int_negative_string_and_stack_arguments(args_prog, reaper, tmp_path):
    run = Spawned([str(args_prog)], tmp_path, reaper)
    seen: dict[str, list] = {"add": [], "neg": [], "greet": [], "eight": []}
    s = run.session
    s.add_probe(placement(args_prog, "add_ints"),
                lambda c: seen["add"].append((signed(c.arg(0), 32), signed(c.arg(1), 32))))
    s.add_probe(placement(args_prog, "neg"), lambda c: seen["neg"].append(signed(c.arg(0))))
    s.add_probe(placement(args_prog, "greet"),
                lambda c: seen["greet"].append((c.read_str(c.arg(0), 64), c.read_str(c.arg(1), 5))))
    s.add_probe(placement(args_prog, "eight"),
                lambda c: seen["eight"].append([signed(c.arg(i)) for i in range(8)]))
    status = run.run()
    assert status.code == 0
    assert seen["add"] == [(40, 2), (-7, -35)]
    assert seen["neg"] == [-123456789]
    # maxlen truncates without a NUL.
    assert seen["greet"] == [(b"world", b"hello")]
    assert seen["eight"] == [[1, -2, 3, -4, 5, -6, 70000000000, -8]]
    assert run.output() == uninstrumented([str(args_prog)]).stdout


def test_int_and_pointer_return_values(args_prog, reaper, tmp_path):
    run = Spawned([str(args_prog)], tmp_path, reaper)
    s = run.session
    rets: dict[str, list] = {"add": [], "neg": [], "ptr": []}
    s.add_probe(placement(args_prog, "add_ints"),
                lambda c: rets["add"].append(signed(c.retval, 32)), kind="return")
    s.add_probe(placement(args_prog, "neg"), lambda c: rets["neg"].append(signed(c.retval)),
                kind="return")
    s.add_probe(placement(args_prog, "give_ptr"),
                lambda c: rets["ptr"].append(c.read_str(c.retval, 32)), kind="return")
    status = run.run()
    assert status.code == 0
    assert rets == {"add": [42, -42], "neg": [123456789], "ptr": [b"urned-pointer"]}
    assert run.output() == uninstrumented([str(args_prog)]).stdout


def test_context_identity_stack_and_symbols(args_prog, reaper, tmp_path):
    run = Spawned([str(args_prog)], tmp_path, reaper)
    got = []

    def look(c):
        got.append((c.pid, c.tid, c.comm, c.cpu, [c.symbolize(a) for a in c.ustack(3)],
                    c.probe.label, c.probe.kind, c.probe.symbol, c.nsecs > 0))

    run.session.add_probe(placement(args_prog, "neg"), look, label="neg-entry")
    run.run()
    pid = run.session.pid
    [(p, t, comm, cpu, stack, label, kind, sym, ts)] = got
    assert (p, t, label, kind, sym, ts) == (pid, pid, "neg-entry", "entry", "neg", True)
    assert comm == args_prog.name[:15]
    assert cpu >= 0
    assert stack[0] == "neg" and stack[1].startswith("main+")


def test_memory_read_error_is_clear(args_prog, reaper, tmp_path):
    from runtime.errors import MemoryReadError

    run = Spawned([str(args_prog)], tmp_path, reaper)
    errors = []

    def bad(c):
        try:
            c.read(8, 4)
        except MemoryReadError as e:
            errors.append(e.message)

    run.session.add_probe(placement(args_prog, "neg"), bad)
    assert run.run().code == 0
    assert errors == [f"cannot read 4 bytes at 0x8 in pid {run.session.pid}"]

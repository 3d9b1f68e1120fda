"""--trace FILE: a Chrome JSON trace (what Perfetto UI and chrome://tracing open), checked
against a JSON schema of the Trace Event Format's events, then for content: the probed
functions' entry/return pairs as properly nested slices per thread, printf lines as instant
events at their hits, map counters with their final values."""

from __future__ import annotations

import json

import jsonschema
import pytest

pytestmark = pytest.mark.timeout(180)

EVENT_SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "traceEvents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "ph", "pid"],
                "properties": {
                    "name": {"type": "string"},
                    "cat": {"type": "string"},
                    "ph": {"enum": ["B", "E", "i", "C", "M"]},
                    "ts": {"type": "number", "minimum": 0},
                    "pid": {"type": "integer"},
                    "tid": {"type": "integer"},
                    "s": {"enum": ["g", "p", "t"]},
                    "args": {"type": "object"},
                },
                "allOf": [
                    {"if": {"properties": {"ph": {"enum": ["B", "E", "i", "C"]}}},
                     "then": {"required": ["ts"]}},
                    # Counters belong to a process; everything else to a thread.
                    {"if": {"properties": {"ph": {"enum": ["B", "E", "i", "M"]}}},
                     "then": {"required": ["tid"]}},
                    {"if": {"properties": {"ph": {"const": "C"}}},
                     "then": {"required": ["args"],
                              "properties": {"args": {"additionalProperties":
                                                      {"type": "number"}}}}},
                ],
            },
        },
    },
}


def test_trace_file_holds_slices_instants_and_counters(uprobe, builder, tmp_path) -> None:
    prog = builder.build("prof_shares.c", "-O2")
    out = tmp_path / "run.trace.json"
    script = (f'uprobe:{prog}:hot, uprobe:{prog}:cold {{ printf("in %s\\n", func); '
              f"@calls[func] = count(); }}\n"
              f"uretprobe:{prog}:hot, uretprobe:{prog}:cold {{ @returns = count(); }}\n"
              f"uprobe:{prog}:spin {{ @spins = count(); }}\n")
    r = uprobe.run("--trace", str(out), "-e", script, "-c", f"{prog} 3")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, EVENT_SCHEMA)
    events = doc["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    assert {e["name"] for e in meta} == {"process_name", "thread_name"}
    timed = sorted((e for e in events if e["ph"] != "M"), key=lambda e: e["ts"])

    # Slices: B/E pairs nest per thread, hot and cold three times each, in call order.
    open_slices: dict[int, list[str]] = {}
    slices: list[str] = []
    spins_inside = 0
    for e in timed:
        stack = open_slices.setdefault(e.get("tid", 0), [])
        if e["ph"] == "B":
            stack.append(e["name"])
        elif e["ph"] == "E":
            assert stack and stack[-1] == e["name"], (stack, e)
            slices.append(stack.pop())
        elif e["ph"] == "i" and e["name"] == "spin":
            spins_inside += stack in (["hot"], ["cold"])
    assert not any(open_slices.values())
    assert slices == ["hot", "cold"] * 3
    # The instant of spin() lies inside the slice of its caller, every time.
    assert spins_inside == 6

    # printf lines: instant events named by their text, at the time of their hit.
    printfs = [e for e in timed if e.get("cat") == "printf"]
    assert [e["name"] for e in printfs] == ["in hot", "in cold"] * 3
    begins = [e for e in timed if e["ph"] == "B"]
    assert [e["ts"] for e in printfs] == [e["ts"] for e in begins]

    # Counters: the last sample of each map holds its final values.
    last = {e["name"]: e["args"] for e in timed if e["ph"] == "C"}
    assert last["@calls"] == {"[hot]": 3, "[cold]": 3}
    assert last["@returns"] == {"value": 6}
    assert last["@spins"] == {"value": 6}
    # The trace adds nothing to the normal output.
    assert "@calls[hot]: 3" in r.out


def test_trace_file_that_cannot_be_written_is_reported(uprobe, builder, tmp_path) -> None:
    prog = builder.build("prof_shares.c", "-O2")
    r = uprobe.run("--trace", str(tmp_path / "no" / "such" / "dir.json"),
                   "-e", f"uprobe:{prog}:hot {{ @ = count(); }}", "-c", f"{prog} 1")
    assert "cannot write the trace" in r.stderr
    assert "Traceback" not in r.stderr

"""Output: maps, hist/lhist, stats, printf, stacks and times as bpftrace prints them.

Text output targets bpftrace 0.17 (Debian bookworm) byte for byte where the two overlap;
JSON lines follow its `-f json` shapes. Pure Python, no ptrace.

Modules (each one job):
    values     Frame, Stack, Usym, Buf, Timestamp, Record, CArray: printable runtime
               values (frozen, usable as map keys)
    valuetext  value_text(v), key_text(key), hex_format_buffer(data): one value's text
    printf     PrintfFormat.parse(fmt) -> .check(kinds) / .format(args); check_printf,
               format_printf: C conversions with bpftrace's 64-bit argument passing
    hist       hist/lhist rows (text and JSON), bucket labels with K/M/G/T
    mapview    ordered_entries(map, top): bpftrace's sort order and `top`
    text       TextOutput(out, diag=None), map_text(map, top, div), value_line(v)
    jsonl      JsonOutput(out), map_json(map, top, div), value_json(v), json_escape
    stack      stack_text(Stack), usym_text(Usym), frame_text(Frame), uaddr_text(addr)
    timefmt    strftime_text(fmt, epoch_ns), time_text(fmt), TIME_DEFAULT_FORMAT,
               boot_ns_to_epoch_ns(ns), monotonic_ns_to_epoch_ns(ns)
    folded     FoldedOutput(out, diag): stack maps as flame-graph folded lines
    sink       Output (base: one locked write per event), attached_text(n), lost_text(n)
    errors     OutputError, PrintfError (one-line, subclasses of runtime.errors.UprobeError)

make_output("text" | "json" | "folded", out, diag=None) -> Output builds the sink for `-f`.

Sink events (TextOutput, JsonOutput and FoldedOutput alike):
    printf(text), message(kind, text) for 'time'/'cat'/'join'/'syscall', value(v),
    map(bpf_map, top=0, div=0), maps_at_exit(map_store), attached_probes(n),
    lost_events(n), error(msg), warning(msg)
"""

from typing import IO

from runtime.output.errors import OutputError, PrintfError
from runtime.output.folded import FoldedOutput
from runtime.output.jsonl import JsonOutput
from runtime.output.printf import PrintfFormat, check_printf, format_printf
from runtime.output.sink import Output
from runtime.output.text import TextOutput
from runtime.output.values import Buf, CArray, Frame, Record, Stack, Timestamp, Usym

__all__ = [
    "Buf", "CArray", "FoldedOutput", "Frame", "JsonOutput", "Output", "OutputError", "PrintfError",
    "PrintfFormat", "Record", "Stack", "TextOutput", "Timestamp", "Usym", "check_printf",
    "format_printf", "make_output",
]


def make_output(fmt: str, out: IO, diag: IO | None = None) -> Output:
    """The sink for `-f text|json|folded`."""
    if fmt == "json":
        return JsonOutput(out)
    if fmt == "folded":
        return FoldedOutput(out, diag)
    if fmt == "text":
        return TextOutput(out, diag)
    raise OutputError(f"unknown output format '{fmt}' (use text, json or folded)")

"""The handlers' side of output: deferred effects become events of the output sink.

Formatting happens here, on the effect thread (printf text, system()/cat() command lines),
so that a hit only captures values. A value that does not fit its format turns into an
error event instead of killing the effect thread.
"""

from __future__ import annotations

from typing import IO, Any

from runtime.errors import UprobeError
from runtime.maps import BpfMap, MapStore
from runtime.output import make_output
from runtime.output.printf import PrintfFormat


class Emitter:
    """Wraps the output sink (runtime.output) for `-f text|json`; diag gets text-mode
    attached/error lines and system()'s stderr."""

    def __init__(self, fmt: str, out: IO, diag: IO) -> None:
        self.sink = make_output(fmt, out, diag)
        self.diag = diag
        # --trace: a runtime.output.chrometrace.ChromeTrace that printf text also goes to.
        self.trace: Any = None

    def format(self, fmt: PrintfFormat, args: tuple) -> str:
        try:
            return fmt.format(args)
        except UprobeError as exc:
            self.error(exc.message)
            return ""

    def printf(self, fmt: PrintfFormat, args: tuple) -> None:
        text = self.format(fmt, args)
        if text:
            self.sink.printf(text)
            if self.trace is not None:
                self.trace.printf(text)

    def text(self, text: str, kind: str = "cat") -> None:
        self.sink.message(kind, text)

    def value(self, value: object) -> None:
        try:
            self.sink.value(value)
        except UprobeError as exc:
            self.error(exc.message)

    def map(self, m: BpfMap, top: int, div: int) -> None:
        self.sink.map(m, int(top), int(div))

    def error(self, message: str) -> None:
        self.sink.error(message)

    def stderr(self, text: str) -> None:
        self.diag.write(text)
        self.diag.flush()

    def attached(self, n: int) -> None:
        self.sink.attached_probes(n)

    def final_maps(self, store: MapStore) -> None:
        self.sink.maps_at_exit(store)

    def flush(self) -> None:
        for f in (self.sink.out, self.diag):
            try:
                f.flush()
            except (OSError, ValueError):
                pass

"""The uprobe CLI, run as the console script runs it, with its start-up split into phases.

    python3 phase_driver.py REPO LAUNCH_NS OUT.json -- CLI-ARGS...

LAUNCH_NS is the harness's time.monotonic_ns() just before it started this interpreter.
Each phase is wall time with the imports made inside it taken out; every import
(module body executed for the first time, timed at the outermost `import` statement) is
one bucket of its own, so the phases add up without counting anything twice:

    interpreter   launch until this file's first line (python start-up, site)
    imports       every first import until the probes are in
    parse         parse + check + plan (uplang.planner.compile_script)
    spawn         fork/exec the -c command and stop it at ld.so's first consistent point
    resolve       symbol lookup for the probes (runtime.resolve.resolve_uprobe)
    place         placement minus resolve (instruction analysis, writes, registry)

The figures are written to OUT.json when placement is done, before the program is let go.
Wrapping the functions costs a few microseconds per call: the driver's own total is
reported beside the plain CLI's, so the difference shows.
"""

from __future__ import annotations

import builtins
import json
import sys
import time
from collections.abc import Callable
from typing import Any

STARTED_NS = time.monotonic_ns()


class Clock:
    """Accumulated phase times (ns) and the import time seen so far."""

    def __init__(self) -> None:
        self.phases: dict[str, int] = {}
        self.imports_ns = 0
        self._depth = 0

    def import_hook(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def timed_import(name: str, globals: Any = None, locals: Any = None,  # noqa: A002
                         fromlist: Any = (), level: int = 0) -> Any:
            if self._depth or (level == 0 and name in sys.modules and not fromlist):
                return real(name, globals, locals, fromlist, level)
            before = len(sys.modules)
            self._depth += 1
            start = time.monotonic_ns()
            try:
                return real(name, globals, locals, fromlist, level)
            finally:
                self._depth -= 1
                if len(sys.modules) != before:  # something was loaded, not just looked up
                    self.imports_ns += time.monotonic_ns() - start
        return timed_import

    def phase(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` timed into `name`, without the imports it made."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, imported = time.monotonic_ns(), self.imports_ns
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.monotonic_ns() - start - (self.imports_ns - imported)
                self.phases[name] = self.phases.get(name, 0) + spent
        return timed


def main() -> int:
    repo, launch_ns, out, sep, *cli_args = sys.argv[1:]
    if sep != "--":
        raise SystemExit("usage: phase_driver.py REPO LAUNCH_NS OUT.json -- CLI-ARGS...")
    sys.path.insert(0, repo)
    clock = Clock()
    builtins.__import__ = clock.import_hook(builtins.__import__)

    import runtime.placement as placement_mod  # noqa: PLC0415 - timed as an import
    import runtime.session as session_mod  # noqa: PLC0415
    import uplang.app.cli as cli_mod  # noqa: PLC0415

    cli_mod.compile_script = clock.phase("parse", cli_mod.compile_script)
    spawn = session_mod.Session.spawn.__func__  # type: ignore[attr-defined]
    session_mod.Session.spawn = classmethod(clock.phase("spawn", spawn))  # type: ignore[assignment]
    import runtime.resolve as resolve_mod  # noqa: PLC0415

    resolve_mod.resolve_uprobe = clock.phase("resolve", resolve_mod.resolve_uprobe)
    real_place_all = placement_mod.Placer.place_all

    def place_all(self: Any, items: Any) -> Any:
        start, imported = time.monotonic_ns(), clock.imports_ns
        resolved = clock.phases.get("resolve", 0)
        try:
            return real_place_all(self, items)
        finally:
            spent = time.monotonic_ns() - start - (clock.imports_ns - imported)
            clock.phases["place"] = spent - (clock.phases.get("resolve", 0) - resolved)
            figures = {"interpreter": STARTED_NS - int(launch_ns),
                       "imports": clock.imports_ns, **clock.phases,
                       "in_place": time.monotonic_ns() - int(launch_ns)}
            with open(out, "w", encoding="utf-8") as f:
                json.dump({k: v / 1e9 for k, v in figures.items()}, f)

    placement_mod.Placer.place_all = place_all  # type: ignore[method-assign]
    return cli_mod.main(cli_args)


if __name__ == "__main__":
    sys.exit(main())

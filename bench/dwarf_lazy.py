"""Reading DWARF lazily: what `args` costs at start-up on a big binary, against reading
every compilation unit (what a reader that indexes the whole file up front pays).

Target: Debian's /usr/bin/python3.11, whose DWARF is in its build-id debug file
(python3.11-dbg; ~11 MB, compressed sections). Every measurement runs in a fresh
interpreter, so no cache of an earlier one helps; medians of the runs.

    PYTHONPATH=. python3 bench/dwarf_lazy.py [--runs N] [--eager-runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = "/usr/bin/python3.11"
FUNCTION = "PyObject_GetAttr"
TYPE = "struct _typeobject"

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from runtime.dwarf.debugfile import locate
from runtime.dwarf.info import DebugInfo
from runtime.dwarf.source import signature_of
from runtime.elfsyms import ElfFile
mode, binary, function, typename = sys.argv[1:5]
t_import = time.perf_counter()
loc = locate(binary)
info = DebugInfo.open(loc.path)
info.dwarf.get_aranges()
t_open = time.perf_counter()
out = {"debug_file": loc.path, "import_s": t_import - t0, "open_s": t_open - t_import}
if mode == "lazy":
    # args.v->ob_type->tp_name: the signature, then the types along the member chain.
    sym = ElfFile.open(binary).function(function)
    sig = signature_of(info, info.function_at(sym.vaddr))
    t_sig = time.perf_counter()
    info.types.layout("struct _object")
    lay = info.types.layout(typename)
    t_type = time.perf_counter()
    out.update(signature_s=t_sig - t_open, type_s=t_type - t_sig, total_s=t_type - t0,
               cus_parsed=info.cus_parsed, cus_indexed=len(info._indexed),
               params=[p.name for p in sig.params], members=len(lay.members))
elif mode == "cold":
    # (struct _typeobject *)arg0 with nothing leading to it: CUs indexed until it turns up.
    lay = info.types.layout(typename)
    t_type = time.perf_counter()
    out.update(type_s=t_type - t_open, total_s=t_type - t0, cus_indexed=len(info._indexed))
else:
    cus = dies = 0
    for cu in info.dwarf.iter_CUs():
        cus += 1
        for _ in cu.iter_DIEs():
            dies += 1
    t_all = time.perf_counter()
    out.update(all_s=t_all - t_open, total_s=t_all - t0, cus=cus, dies=dies)
print(json.dumps(out))
"""


def child(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, BINARY, FUNCTION, TYPE],
                          cwd=REPO, env={"PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--eager-runs", type=int, default=1)
    opts = ap.parse_args()
    lazy = [child("lazy") for _ in range(opts.runs)]
    cold = [child("cold") for _ in range(opts.runs)]
    eager = [child("eager") for _ in range(opts.eager_runs)]

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    first = lazy[0]
    print(f"DWARF of {BINARY}: {first['debug_file']} ({eager[0]['cus']} compilation units, "
          f"{eager[0]['dies']:,} DIEs); `args` of {FUNCTION} and the layout of {TYPE} "
          f"({first['members']} members). Lazy: {opts.runs} fresh interpreters, eager: "
          f"{opts.eager_runs}; medians.\n")
    print("| step | lazy: args.v->ob_type (s) | lazy: cold cast (s) | eager: every CU (s) |")
    print("|---|---:|---:|---:|")
    print(f"| import the modules | {med(lazy, 'import_s'):.3f} | {med(cold, 'import_s'):.3f} | "
          f"{med(eager, 'import_s'):.3f} |")
    print(f"| open the debug file, decompress, aranges | {med(lazy, 'open_s'):.3f} | "
          f"{med(cold, 'open_s'):.3f} | {med(eager, 'open_s'):.3f} |")
    print(f"| signature of {FUNCTION} | {med(lazy, 'signature_s'):.3f} | | |")
    print(f"| layout of {TYPE} | {med(lazy, 'type_s'):.3f} | {med(cold, 'type_s'):.3f} | |")
    print(f"| parse every DIE of every CU | | | {med(eager, 'all_s'):.3f} |")
    total_l, total_c, total_e = med(lazy, "total_s"), med(cold, "total_s"), med(eager, "total_s")
    print(f"| **total** | **{total_l:.3f}** | **{total_c:.3f}** | **{total_e:.3f}** |")
    print(f"\nLazy / eager: {total_l / total_e:.3f}x along a member chain "
          f"({first['cus_parsed']} CU parsed, {first['cus_indexed']} indexed), "
          f"{total_c / total_e:.3f}x for a cast to a type nothing led to "
          f"({cold[0]['cus_indexed']} CUs indexed until it turned up).")


if __name__ == "__main__":
    main()

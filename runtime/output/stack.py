"""ustack and usym text, as bpftrace prints them (BPFtrace::get_stack / resolve_usym).

A stack starts with a newline and puts each frame on its own line, so that as a map key
it reads `@[\\n        f+4\\n        main+20\\n]: 3`. Frames that resolve to no symbol print
their address as C++ prints a `void *` ("0x7f12..."); perf mode adds the module, or
"([unknown])".
"""

from __future__ import annotations

from runtime.output.values import Frame, Stack, Usym

STACK_INDENT = " " * 8  # bpftrace passes indent=8 for stacks in maps and prints


def pointer_text(address: int) -> str:
    """C++ `ostream << (void *)addr`: lowercase hex with 0x, and "0" for null."""
    return f"{address:#x}" if address else "0"


def frame_text(frame: Frame, with_module: bool = False) -> str:
    if frame.symbol is None:
        text = pointer_text(frame.address)
        return text + " ([unknown])" if with_module else text
    text = f"{frame.symbol}+{frame.offset}"
    if with_module:
        text += f" ({frame.module})" if frame.module else " ([unknown])"
    return text


def stack_text(stack: Stack) -> str:
    """The whole stack: a leading newline, then one line per frame."""
    lines = ["\n"]
    for frame in stack.frames:
        if stack.mode == "perf":
            lines.append(f"\t{frame.address:x} {frame_text(frame, with_module=True)}\n")
        elif stack.mode == "raw":
            lines.append(f"{frame.address:x}\n")
        else:
            lines.append(f"{STACK_INDENT}{frame_text(frame)}\n")
    return "".join(lines)


def usym_text(sym: Usym) -> str:
    """usym(): the symbol name without offset, or the address when unresolved."""
    return sym.symbol if sym.symbol is not None else pointer_text(sym.address)


def uaddr_text(address: int) -> str:
    """Pointer values (uaddr()) print as bpftrace prints pointer types: "0x" + hex."""
    return f"0x{address:x}"

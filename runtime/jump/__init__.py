"""The jump path: probe sites patched with a `jmp rel32` into in-target trampolines."""

"""The jump path: probe sites patched with a `jmp rel32` into in-target trampolines that
run the in-target program (clause split, shared-memory layout, LLVM code generation) and
tracer-side readers that turn the shared area into maps and output (docs/jump-path.md)."""

"""The jump path: probe sites patched with a `jmp rel32` into in-target trampolines.

The in-target program (clause split, shared-memory layout, LLVM code generation, the
tracer-side readers) and the mechanics (eligibility, trampolines, shared-area injection,
live patching, the placement strategy); see docs/jump-path.md.
"""

"""The in-target program of the jump path: clause split, shared-memory layout, LLVM code
generation, and the tracer-side readers (see docs/jump-path.md)."""

"""Plan bodies compiled to Python callables: evaluated at the hit, effects deferred.

Modules (each one job):
    codegen    ClauseGen: one clause -> the Python source of `def clause_N(_ctx)`
    compiler   compile_plan(plan, support, compile_format) -> {clause index: CompiledClause}
    support    HandlerSupport: session-wide state (maps, self->, output) and the helpers
               the generated code calls; effects go through ctx.defer()
    mapops     MapOps: map operations on runtime.maps objects, fast path for aggregations
    emit       Emitter: deferred effects -> runtime.output sink events (text or JSON)
    contexts   ManualContext (BEGIN/END/interval), UsdtContext (USDT note arguments)
    ctypes_    VType: compile-time C types for memory reads, casts and comparisons
    values     C integer semantics (wraparound, BPF division) and string helpers

runtime/executor.py drives them: RunOptions, run_plan(plan, options) -> exit code.
"""

"""The language's vocabulary as data: probe types, builtins and functions, registers,
aggregations and C type spellings.

Every part of uprobe that needs to know a word reads it here: the parser and the checks,
the planner, completion and highlighting, `uprobe -l`, the handler compiler and the
executor. These modules hold tables and import nothing else from uplang, so they are part
of the contract the runtime may read (with uplang.plan and uplang.ast), and adding a word
means adding a row, not finding the copies.
"""

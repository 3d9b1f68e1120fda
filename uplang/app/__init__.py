"""The application: the `uprobe` command line, the REPL, its completion and highlighting.

It sits above both layers (the language in uplang/, the runtime in runtime/) and is the only
code that imports both; the runtime is imported lazily, on the paths that need it, so
`--dry-run`, `--help` and script errors never load it.
"""

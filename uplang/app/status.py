"""Exit statuses of the `uprobe` command and the REPL (bpftrace's, documented in --help)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 1  # script or usage error
EXIT_RUNTIME = 2  # target, permission or runtime error: tracing could not start
EXIT_INTERRUPTED = 130

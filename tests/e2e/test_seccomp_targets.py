"""Programs under seccomp: strict mode is refused before anything is injected (any system
call of ours would kill it); under a filter that fails our mmap, the message says the
filter refused. Either way the program runs on unharmed."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import UPROBE, uprobe_env

pytestmark = pytest.mark.timeout(120)

EXPECTED = {
    "strict": "runs in strict seccomp mode (Seccomp: 1 in /proc/{pid}/status): any system "
              "call injected to place probes would kill it, so nothing was placed",
    "filter": "its seccomp filter refused the injected mmap (Operation not permitted), so no "
              "probe could be placed safely",
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_seccomp_target_refused_with_the_reason(builder, reaper, tmp_path, mode):
    prog = builder.build("seccomp_target.c", "-O1")
    target = subprocess.Popen([str(prog), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    reaper.add(target.pid)
    assert target.stdout.readline() == "ready\n"
    done = subprocess.run([*UPROBE, "-p", str(target.pid), "-e",
                           f"uprobe:{prog}:work {{ @c = count(); }}"],
                          cwd=tmp_path, env=uprobe_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    message = EXPECTED[mode].format(pid=target.pid)
    assert (done.returncode, done.stderr) == (2, f"uprobe: pid {target.pid}: {message}\n"
                                              if mode == "filter" else
                                              f"uprobe: pid {target.pid} {message}\n")
    out, _ = target.communicate(input="abc", timeout=60)
    assert (out, target.returncode) == ("3\n", 0)

"""Flags at a probe site that ptrace cannot write: popf setting ID (bit 21) runs natively
from its slot, so the program reads back what it popped."""

from __future__ import annotations

import pytest
from programs.rt_support import Spawned, placement

pytestmark = pytest.mark.timeout(60)


def test_popf_setting_id_at_a_probe_site(builder, reaper, tmp_path):
    prog = builder.build("popf_id.S", "-no-pie")
    run = Spawned([str(prog)], tmp_path, reaper)
    hits = []
    run.session.add_probe(placement(prog, "popf_site"), lambda ctx: hits.append(1))
    status = run.run()
    assert (status.code, len(hits)) == (0, 1000)

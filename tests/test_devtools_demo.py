"""``devtools/demo.py``: the README's first command, `kubecost-worker demo`, on a small simulation: it runs end to
end on the embedded defaults and its stored rows equal the simulator's ground truth in every column."""

from __future__ import annotations

import pytest

from .helpers import run_worker

pytestmark = [pytest.mark.slow, pytest.mark.needs_chdb, pytest.mark.needs_prometheus]


def test_the_demo_runs_and_matches_the_ground_truth(tmp_path):
    done = run_worker("demo", "--workdir", str(tmp_path / "demo"), "--tenants", "1", "--hours", "2", "--pods", "8")
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("ground truth:"))
    assert "0 missing, 0 unexpected, 0 mismatched" in line, line
    assert "5/5 cost by namespace" in done.stdout and "__idle__" in done.stdout

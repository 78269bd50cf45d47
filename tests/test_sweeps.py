"""A sweep through Hydra's launchers (basic, submitit_local), killed with kill -9 part-way and restarted:
finished cells are not recomputed (content-keyed stage caches, unchanged _DONE timestamps) and the restarted
sweep produces the same selections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

SWEEP = ["-m", "sweep=strategy_x_budget", "debug=tiny", "selection=diq,random", "budget.fraction=0.1,0.3"]


def _sweep(tmp: Path, cache: Path, name: str, launcher: str, kill_after_records: int | None = None):
    env = {**os.environ, "DIQ_CACHE_DIR": str(ROOT / ".diq_cache"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "diq.run", *SWEEP, f"hydra/launcher={launcher}", f"cache_dir={cache}",
           f"hydra.sweep.dir={tmp / name}"]
    if launcher == "submitit_local":
        cmd += ["hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    if kill_after_records is None:
        assert p.wait(timeout=900) == 0
        return
    deadline = time.time() + 600
    while time.time() < deadline and len(list((tmp / name).rglob("record.json"))) < kill_after_records:
        time.sleep(0.5)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=60)


def _done_times(cache: Path) -> dict[str, float]:
    return {str(d.relative_to(cache)): d.stat().st_mtime for d in cache.rglob("_DONE.json")}


@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_sweep_killed_and_resumed_recomputes_nothing_finished(tmp_path, launcher):
    cache = tmp_path / "cache"
    _sweep(tmp_path, cache, "first", launcher, kill_after_records=1)
    first = list((tmp_path / "first").rglob("record.json"))
    assert 1 <= len(first) < 4, "the sweep was killed part-way"
    before = _done_times(cache)
    assert any(k.startswith("train/") for k in before) and any(k.startswith("eval/") for k in before)
    _sweep(tmp_path, cache, "second", launcher)
    after = _done_times(cache)
    for k, t in before.items():
        assert after[k] == t, f"{k} was recomputed after the restart"
    recs = [json.loads(p.read_text()) for p in (tmp_path / "second").rglob("record.json")]
    assert len(recs) == 4 and {(r["strategy"], r["budget_fraction"]) for r in recs} == \
        {("diq", 0.1), ("diq", 0.3), ("random", 0.1), ("random", 0.3)}
    done = json.loads(first[0].read_text())
    again = next(r for r in recs if (r["strategy"], r["budget_fraction"]) == (done["strategy"], done["budget_fraction"]))
    assert again["selection_hash"] == done["selection_hash"] and again["metrics"] == done["metrics"]
    assert sum(1 for k in after if k.startswith("scores/influence/")) == 1  # one influence score for the sweep

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


def _grid(tmp: Path, name: str, *extra: str, cache: Path):
    """experiment=ablation_val_size debug=tiny, *without* -m: the experiment's hydra.mode runs the grid."""
    env = {**os.environ, "DIQ_CACHE_DIR": str(cache), "DIQ_RESULTS_DIR": str(tmp / "results")}
    cmd = [sys.executable, "-m", "diq.run", "experiment=ablation_val_size", "debug=tiny",
           "scoring.validation.per_task=2,3", f"hydra.sweep.dir={tmp / name}", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _table(tmp: Path) -> list[dict]:
    import csv

    return list(csv.DictReader((tmp / "results" / "ablation_val_size.csv").read_text().splitlines()))


def test_grid_without_m_runs_every_cell_and_writes_its_table(tmp_path):
    cache = tmp_path / "cache"
    r = _grid(tmp_path, "s1", cache=cache)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert len(list((tmp_path / "s1").rglob("record.json"))) == 2 * 2 * 2  # selection × per_task × budget
    rows = _table(tmp_path)
    cells = sorted((x["strategy"], x["budget"], x["cell"]) for x in rows)
    assert cells == [("base model", "base", "")] + sorted(
        ("diq", b, f"budget={b} scoring.validation.per_task={v} selection=diq") for v in (2, 3) for b in ("p1", "p10"))
    assert all(x["n_seeds"] == "1" and x["status"] == "complete" for x in rows)
    # every run folder: scores.parquet whose selected rows are exactly selected_ids.json, in order
    import pandas as pd

    for rec in (tmp_path / "s1").rglob("record.json"):
        d = json.loads(rec.read_text())
        if d["strategy"] == "none":
            assert d["n_selected"] == 0 and "train" not in d and d["averages"]["AvgA"] is not None
            continue
        sc = pd.read_parquet(rec.parent / "scores.parquet")
        ids = json.loads((rec.parent / "selected_ids.json").read_text())
        assert sc[sc.selected].sort_values("selection_rank")["id"].tolist() == ids
        assert {"dot", "difficulty", "loss", "quadrant"} <= set(sc.columns) and len(sc) == d["n_pool"]
        assert d["cell"]["scoring.validation.per_task"] in ("2", "3") and d["cell_hash"] and d["config_hash"]
        assert not (rec.parent / "INCOMPLETE").exists()
    # the same sweep again (as after a kill and a restart): no cell is counted twice
    r = _grid(tmp_path, "s2", cache=cache)
    assert r.returncode == 0
    rows2 = _table(tmp_path)
    assert len(rows2) == len(rows) and all(x["n_seeds"] == "1" for x in rows2)
    assert int(rows2[0]["set_aside_duplicates"]) >= 8
    assert "duplicate record(s)" in (tmp_path / "results" / "ablation_val_size.md").read_text()


def test_a_failed_cell_never_takes_the_sweep_down(tmp_path):
    r = _grid(tmp_path, "s", "selection=diq", "budget=p10",
              "scoring.validation.per_task=2,0", cache=tmp_path / "cache")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "failed cells" in r.stderr and "scoring.validation.per_task=0" in r.stderr
    assert len(list((tmp_path / "s").rglob("record.json"))) == 1
    failed = list((tmp_path / "s").rglob("record.failed.json"))
    assert len(failed) == 1 and (failed[0].parent / "INCOMPLETE").exists()
    rows = {x["cell"]: x for x in _table(tmp_path)}
    bad = rows["budget=p10 scoring.validation.per_task=0 selection=diq"]
    assert bad["status"] == "failed" and "per_task=0" in bad["error"]
    md = (tmp_path / "results" / "ablation_val_size.md").read_text()
    assert "FAILED: scoring.validation.per_task=0" in md

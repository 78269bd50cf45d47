"""python -m diq.tools.diagnose on a tiny scored run: stability across LoRA seeds, validation draws, projection and
validation sizes (checked against an independent top-k), correlations, quadrants, plots; reruns hit the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diq.run import run
from diq.stages.score import cache as scores_mod
from diq.tools.diagnose import RunScores, diagnose, jaccard, main


@pytest.fixture
def scored_run(run_cfg, tmp_path):
    rec = run(run_cfg("selection=diq", "scoring/difficulty=loss", "pool.limit=60", "budget.fraction=0.2",
                      "scoring.validation.per_task=4", "stop_after=select", "scoring.influence.batch_tokens=2048",
                      out="scored"))
    return tmp_path / "scored", rec


def test_diagnose_stability_against_an_independent_top_k(scored_run):
    run_dir, rec = scored_run
    res = diagnose(run_dir, seeds=2, draws=2, proj_dim=64, val_sizes=[2, 4], budgets=(0.1,))
    st = res["stability"]
    assert set(st) == {"lora_init_seed", "validation_draw", "projection", "validation_size"}
    assert res["budgets"] == [0.1, 0.2]
    rs = RunScores(run_dir)
    other = rs.dot(**{"train.lora.seed": int(rs.cfg.train.lora.seed) + 1})
    base = rs.df["dot"].to_numpy()
    assert not np.allclose(other, base)  # the LoRA init really changes Dot (B=0, A random)
    # DIQ's selection at 10 %, recomputed here from the quadrant rule, for the base and the seed-1 scores
    from diq.stages.select.quadrants import select as qselect

    d = rs.df["difficulty"].to_numpy()
    k = round(0.1 * len(base))
    ids = rs.df["id"].to_numpy()
    ref = qselect(ids, d, base, k)[0]
    alt = qselect(ids, d, other, k)[0]
    assert st["lora_init_seed"]["jaccard"]["0.1"][f"seed {int(rs.cfg.train.lora.seed) + 1}"] == \
        pytest.approx(jaccard(ref, alt))
    assert all(0 <= v <= 1 for b in st.values() for per in b["jaccard"].values() for v in per.values())
    assert -1 <= res["correlations"]["dot~length"] <= 1 and res["correlations"]["dot~loss"] is not None
    assert sum(q["n"] for q in res["quadrants"].values()) == 60
    assert sum(q["selected"] for q in res["quadrants"].values()) == rec["n_selected"]
    assert all(len(q["examples"]) == min(3, q["n"]) for q in res["quadrants"].values())
    assert len(res["plots"]) == 2


def test_diagnose_cli_writes_record_and_reuses_the_cache(scored_run, capsys):
    run_dir, _ = scored_run
    assert main([str(run_dir), "--seeds", "2", "--draws", "2", "--proj-dim", "0"]) == 0
    out = capsys.readouterr().out
    assert "stability: Jaccard" in out and "lora_init_seed" in out and "dot~length" in out
    rec = json.loads((run_dir / "record.json").read_text())
    assert set(rec["diagnostics"]["stability"]) == {"lora_init_seed", "validation_draw"}
    calls = dict(scores_mod.SCORER_CALLS)
    assert main([str(run_dir), "--seeds", "2", "--draws", "2", "--proj-dim", "0"]) == 0
    assert dict(scores_mod.SCORER_CALLS) == calls  # every extra pass came from the score cache


def test_diagnose_names_bad_runs(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no record.json" in capsys.readouterr().err

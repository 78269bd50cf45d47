"""Every strategy through the real entry point on the tiny model (score → select), with small LESS settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from diq.run import run

SMALL_LESS = ["scoring.less.proj_dim=256", "scoring.less.warmup.epochs=2", "scoring.less.warmup.fraction=0.1",
              "scoring.less.lora.r=4", "scoring.less.lora.alpha=16", "scoring.less.warmup.lr=1e-3"]


# Pinned selection hashes on the tiny model (torchtune-style regression values): a change in any scorer, strategy,
# tie-break or data path changes one of them. Update them only for an intended behaviour change, and say so.
@pytest.mark.slow
@pytest.mark.parametrize("strategy,extra,pinned", [
    ("less", SMALL_LESS, "88cdd507183605b7"),
    ("similarity", [], "b38877b8aba5b7da"),
    ("ifd", [], "6cc51a14e3dc72d0"),
    ("length", [], "183886066e1e23ea"),
    ("difficulty", ["scoring/difficulty=pass_rate"], "b4f817d5b8af1f6e"),
    ("difficulty", ["scoring/difficulty=judge", "selection.perspective=reasoning", "pool.limit=20",
                    "judge.max_length=256"], "9794fbbbff1e6e5e"),
    ("diq", ["scoring.influence.warmup.enabled=true", "scoring.influence.warmup.epochs=2",
             "scoring.influence.warmup.checkpoints=all", "scoring/difficulty=loss",
             "scoring.proxies.loss_from_influence=false"], "9e616492637c89ad"),
    ("diq", ["scoring.influence.proj_dim=512", "scoring.influence.normalize=cosine",
             "scoring/difficulty=length"], "ab1b24bb2d920dfd"),
])
def test_strategy_selects_k_distinct_ids(run_cfg, strategy, extra, pinned):
    rec = run(run_cfg(f"selection={strategy}", "stop_after=select", *extra, out=strategy))
    assert rec["selection_hash"].startswith(pinned), rec["selection_hash"]
    ids = json.loads(Path(rec["selected_ids_path"]).read_text())
    assert len(ids) == len(set(ids)) == rec["n_selected"] == round(0.1 * rec["n_pool"])
    assert rec["scores"]
    again = run(run_cfg(f"selection={strategy}", "stop_after=select", *extra, out=strategy + "2"))
    assert again["selection_hash"] == rec["selection_hash"]
    for name, meta in again["scores"].items():
        if name not in ("validation", "scoring_model"):
            assert meta.get("reused") is not False, f"{name} was recomputed on rerun"


def test_less_warmup_checkpoints_store_adam_state_by_module(run_cfg):
    rec = run(run_cfg("selection=less", "stop_after=score", *SMALL_LESS, out="lesswu"))
    cache = Path(rec["config"]["cache_dir"])
    ckpts = sorted(cache.glob("warmup/less/*/ckpt-*"))
    assert [c.name for c in ckpts] == ["ckpt-1", "ckpt-2"]
    state = torch.load(ckpts[-1] / "adam.pt", weights_only=True)
    from omegaconf import OmegaConf

    from diq.engine.gradients import GradientCapture
    from diq.engine.lora import attach_lora
    from diq.engine.models import load_model

    lora = OmegaConf.create({"r": 4, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                             "seed": 0})
    dims = GradientCapture(attach_lora(load_model(rec["model_path"]), lora)).dims
    assert set(state) == set(dims)
    for n, (m, v) in state.items():
        assert m.numel() == v.numel() == dims[n] and bool((v >= 0).all())
    meta = json.loads((ckpts[-1].parent / "_DONE.json").read_text())
    lrs = [c["mean_lr"] for c in meta["checkpoints"]]
    assert len(lrs) == 2 and lrs[0] > lrs[1] > 0  # cosine decay: epoch 1 has the larger mean lr
    assert np.isfinite(lrs).all()


def test_less_warmup_is_retrained_when_the_train_settings_it_inherits_change(run_cfg, monkeypatch):
    from diq.stages.score import cache as scores

    monkeypatch.setattr(scores, "SCORER_CALLS", scores.SCORER_CALLS.__class__())
    a = run(run_cfg("selection=less", "stop_after=score", *SMALL_LESS, out="lessA"))  # may come from the cache
    calls = dict(scores.SCORER_CALLS)
    b = run(run_cfg("selection=less", "stop_after=score", *SMALL_LESS, "train.effective_batch=2", out="lessB"))
    assert scores.SCORER_CALLS["warmup/less"] == calls.get("warmup/less", 0) + 1  # a new warm-up, new scores
    assert scores.SCORER_CALLS["less"] == calls.get("less", 0) + 1
    c = run(run_cfg("selection=less", "stop_after=score", *SMALL_LESS, "train.effective_batch=2", out="lessC"))
    assert scores.SCORER_CALLS["less"] == calls.get("less", 0) + 1 and c["scores"]["less"]["reused"] is True
    assert a["scores"]["less"]["cache"] != b["scores"]["less"]["cache"] == c["scores"]["less"]["cache"]


# Pinned end-to-end values on the tiny model (torchtune-style recipe test): DIQ with the loss difficulty through
# score → select → train → eval. Measured identical before and after the diq/scoring + _target_ refactor (commit
# b295765 vs its successor, same overrides); a change in scoring, selection, training or evaluation shows up here.
@pytest.mark.slow
def test_pinned_tiny_pipeline_values(run_cfg):
    rec = run(run_cfg("selection=diq", "scoring/difficulty=loss", "pool.limit=100", "budget.fraction=0.3",
                      "train.max_length=256", "train.epochs=1", "scoring.influence.max_length=256",
                      "scoring.validation.per_task=4", "eval.limit=8", out="pinned"))
    assert rec["selection_hash"].startswith("71e794a1bccff1ff"), rec["selection_hash"]
    assert rec["train"]["mean_loss_first_step"] == pytest.approx(6.256671905517578, rel=1e-4)
    assert rec["train"]["final_loss"] == pytest.approx(6.2584593296051025, rel=1e-4)
    assert rec["metrics"] == {"pubmedqa_pqal_cot": 0.0, "pubmedqa_pqal_mc": 0.625}
    assert rec["scores"]["difficulty"]["loss_from_influence"] is True  # the record names where the loss came from


def test_scorers_name_their_own_columns_and_by_products():
    """The score stage never switches on a score's name: each scorer's ``Score`` says which column its value gets in
    scores.parquet, which by-products it hands on, and where its metadata goes in the record."""
    from diq.stages.score.result import Score, Scores
    from diq.stages.select import scores_frame

    recs = [{"id": f"s{i}"} for i in range(3)]
    scores = Scores()
    scores.add("influence", Score.cached({"score": np.array([0.3, 0.1, 0.2]), "loss": np.array([2.0, 1.0, 3.0]),
                                          "_meta": {"n_val": 4}}, value="score", column="dot",
                                         extra={"loss": np.array([2.0, 1.0, 3.0])}))
    scores.add("difficulty", Score(np.array([10.0, 90.0, 50.0]), {"source": "judge"}))
    scores.add("influence", Score(None, {"shard": 1}, record_as="influence_shard"))  # a shard: no value to read
    assert sorted(scores) == ["difficulty", "influence", "loss"]  # what strategies read
    assert list(scores.columns) == ["dot", "loss", "difficulty"]
    assert scores.info == {"influence": {"n_val": 4}, "difficulty": {"source": "judge"}, "influence_shard": {"shard": 1}}
    df = scores_frame(recs, scores, ["s1"], {})
    assert list(df.columns) == ["id", "dot", "loss", "difficulty", "selected", "selection_rank"]
    assert df["dot"].tolist() == [0.3, 0.1, 0.2] and df["selection_rank"].tolist() == [-1, 0, -1]

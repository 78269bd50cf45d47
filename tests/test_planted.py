"""The planted-signal experiment, CI-sized (experiments/planted.yaml, debug=tiny): the pool gets 40 in-domain
PubMedQA samples and 40 corrupted copies with hidden origins; the selection is measured against them."""

from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

from conftest import compose
from diq.run import run


def _cell(tmp_path, cache_dir, strategy, seed=0):
    cfg = compose(["experiment=planted", "debug=tiny", f"selection={strategy}", "budget.fraction=0.1", f"seed={seed}",
                   "stop_after=select", f"cache_dir={cache_dir}"])
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / f"{strategy}-{seed}")
    return run(cfg)


def test_planted_pool_hides_origins_and_measures_the_selection(tmp_path, cache_dir):
    inf = _cell(tmp_path, cache_dir, "influence")
    p = inf["planted"]
    assert p["counts"] == {"original": 100, "in_domain": 40, "corrupted": 40} and p["n_selected"] == 18
    assert p["base_rate_in_domain"] == pytest.approx(40 / 180)
    origins = json.loads((tmp_path / "influence-0" / "planted_origins.json").read_text())
    ids = json.loads((tmp_path / "influence-0" / "selected_ids.json").read_text())
    assert p["precision_in_domain"] == pytest.approx(sum(origins[i] == "in_domain" for i in ids) / 18)
    # no strategy can see the origin: the records carry no such field
    import pandas as pd

    assert "origin" not in pd.read_parquet(tmp_path / "influence-0" / "scores.parquet").columns
    # the measured answer on the tiny (random-weight) model, pinned as a regression value: influence finds the
    # in-domain samples at more than twice their base rate (9 of 18 vs 22 %); the same rerun gives the same numbers
    assert p["precision_in_domain"] == pytest.approx(0.5) and p["share_corrupted"] == pytest.approx(3 / 18)
    again = _cell(tmp_path / "again", cache_dir, "influence")
    assert again["planted"] == p and again["selection_hash"] == inf["selection_hash"]
    rnd = _cell(tmp_path, cache_dir, "random")
    assert rnd["planted"]["precision_in_domain"] == pytest.approx(6 / 18)
    assert p["precision_in_domain"] > 2 * p["base_rate_in_domain"]
    # the table shows what was selected against the known answer, per strategy, with the base rates
    from diq.report import aggregate, render, write_csv

    for r, d in ((inf, "influence-0"), (rnd, "random-0")):
        r["_path"] = str(tmp_path / d / "record.json")
        r["status"] = "complete"
    rows = aggregate([inf, rnd], "planted", None)
    by = {r["strategy"]: r for r in rows}
    assert by["influence"]["in_domain_precision"] == 50.0 and by["influence"]["in_domain_base_rate"] == 22.22
    assert by["random"]["in_domain_precision"] == pytest.approx(100 * 6 / 18, abs=0.01)
    write_csv(rows, tmp_path / "planted.csv")
    md = render(tmp_path / "planted.csv")
    assert "in-domain % of selected" in md and "50.00 (base 22.22)" in md

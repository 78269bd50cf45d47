"""Paired statistics in every table: Δ vs a reference with a paired-bootstrap CI, McNemar's exact p, the minimum
detectable difference, and the plots (diq/report/stats.py, diq/report/table.py, diq/report/render.py)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from diq import report
from diq.report import stats


def _items(bits: str, start: int = 0) -> dict[str, dict[int, int]]:
    return {"bench": {start + i: int(b) for i, b in enumerate(bits)}}


def test_mcnemar_exact_known_values():
    assert stats.mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert stats.mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)  # C(10,0) + C(10,1)
    assert stats.mcnemar_exact(4, 4) == 1.0 and stats.mcnemar_exact(0, 0) == 1.0


def test_mdd_formula():
    # one benchmark of 200 items at 50 %: (1.96 + 0.84) * sqrt(2 * 0.25 / 200)
    assert stats.mdd_from([(0.5, 200)]) == pytest.approx(2.8015852 * math.sqrt(2 * 0.25 / 200), rel=1e-6)
    # two benchmarks average: the variance of the mean of two
    assert stats.mdd_from([(0.5, 100), (0.5, 100)]) == pytest.approx(
        2.8015852 * math.sqrt(2 * (0.25 / 100 + 0.25 / 100)) / 2, rel=1e-6)


def test_paired_delta_ci_and_mcnemar():
    a = "1" * 60 + "0" * 40   # 60 %
    b = "1" * 40 + "0" * 60   # 40 %: a is right on 20 items where b is wrong, never the reverse
    res = stats.paired([_items(a)], [_items(b)])
    assert res["delta"] == pytest.approx(0.2) and res["n_items"] == 100
    assert 0.1 < res["ci_low"] < 0.2 < res["ci_high"] < 0.3
    assert res["mcnemar_p"] == pytest.approx(stats.mcnemar_exact(20, 0))
    same = stats.paired([_items(a)], [_items(a)])
    assert same["delta"] == 0 and same["ci_low"] == same["ci_high"] == 0 and same["mcnemar_p"] == 1.0
    assert stats.paired([_items(a)], [_items(b, start=5)]) is None  # different items: no pairing
    # several seeds: no McNemar, and the seeds are resampled (a wider interval than one seed gives)
    seeds = [_items("1" * k + "0" * (100 - k)) for k in (30, 40, 50)]
    multi = stats.paired([_items(a)], seeds)
    assert multi["mcnemar_p"] is None and multi["delta"] == pytest.approx(0.2)
    one = stats.paired([_items(a)], [seeds[1]])
    assert multi["ci_high"] - multi["ci_low"] > one["ci_high"] - one["ci_low"]


def _rec(strategy, budget, seed, bits, tmp_path, tasks=("bench",)):
    per_task = {t: {"value": bits.count("1") / len(bits), "n": len(bits), "category": "S",
                    "per_item_correct": {"doc_ids": list(range(len(bits))), "correct": bits}} for t in tasks}
    rec = {"strategy": strategy, "budget_fraction": budget, "seed": seed, "model": "m", "pool": "p", "status": "complete",
           "experiment": "x", "cell_hash": f"{strategy}-{budget}", "config": {"eval": {"limit": None}},
           "eval": {"tasks": per_task}, "averages": {"AvgS": bits.count("1") / len(bits), "AvgC": None,
                                                       "AvgA": bits.count("1") / len(bits)},
           "averages_n": {"AvgS": len(tasks), "AvgC": 0}, "finished_at": f"2026-12-06T00:00:0{seed}"}
    d = tmp_path / "runs" / f"{strategy}-{budget}-{seed}"
    d.mkdir(parents=True)
    (d / "record.json").write_text(json.dumps(rec))


def test_report_has_paired_columns_header_and_plots(tmp_path):
    n = 120
    _rec("none", 0.0, 0, "1" * 30 + "0" * 90, tmp_path)
    for s, k in enumerate((36, 40, 44)):
        _rec("random", 0.1, s, "1" * k + "0" * (n - k), tmp_path)
    _rec("diq", 0.1, 0, "1" * 80 + "0" * 40, tmp_path)
    _rec("length", 0.1, 0, "1" * 41 + "0" * 79, tmp_path)
    out = tmp_path / "results"
    assert report.main(["--records", str(tmp_path / "runs"), "--table", "t", "--out", str(out)]) == 0
    rows = {(r["strategy"], r["budget"]): r for r in csv.DictReader((out / "t.csv").read_text().splitlines())}
    diq = rows[("diq", "p10")]
    assert diq["reference"] == "random @ p10"
    assert float(diq["delta_ref"]) == pytest.approx(100 * (80 - 40) / n, abs=0.01)
    assert float(diq["delta_ref_ci_low"]) > 20 and diq["mcnemar_p"] == ""  # the reference has 3 seeds
    assert float(diq["delta_base"]) == pytest.approx(100 * 50 / n, abs=0.01)
    assert float(rows[("length", "p10")]["delta_ref_ci_low"]) < 0 < float(rows[("length", "p10")]["delta_ref_ci_high"])
    p = 40 / n
    assert float(diq["mdd"]) == pytest.approx(100 * stats.mdd_from([(p, n)]), abs=0.01)
    assert rows[("random", "p10")]["delta_ref"] == ""  # the reference itself
    md = (out / "t.md").read_text()
    assert "Minimum detectable difference" in md and f"**{float(diq['mdd']):.2f} points**" in md
    assert "+33.33 [" in md and "Δ vs reference [95 % CI]" in md
    assert (out / "t_avga.png").stat().st_size > 5000 and (out / "t_delta.png").stat().st_size > 5000
    # another reference: every row against the base model's row is the Δ-vs-base column, by --reference
    assert report.main(["--records", str(tmp_path / "runs"), "--table", "t2", "--out", str(out),
                        "--reference", "length"]) == 0
    rows2 = {(r["strategy"], r["budget"]): r for r in csv.DictReader((out / "t2.csv").read_text().splitlines())}
    assert rows2[("diq", "p10")]["reference"] == "length @ p10"
    assert rows2[("diq", "p10")]["mcnemar_p"] not in ("", None)  # single seed against single seed
    assert report.main(["--check", "--out", str(out)]) == 0

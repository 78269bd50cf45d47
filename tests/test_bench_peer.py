"""The side-by-side with dattri-llm (python -m diq.tools.bench influence --against dattri) on the tiny model: each engine in
its own process, the same samples, and dattri-llm's exact TracIn agreeing with our exact Dot."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("dattri_llm")
pytestmark = pytest.mark.slow  # two engines × two methods, each in a spawned process


def test_against_dattri_agrees_and_reports_both_engines(tmp_path, tiny_path):
    from diq.tools.bench import main

    out = tmp_path / "peer.json"
    assert main(["influence", "--model", "tiny", "--n", "12", "--max-len", "192", "--val-per-task", "4",
                 "--against", "dattri", "--less-r", "4", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    for side in ("ours", "dattri_llm"):
        assert res[side]["seconds"] > 0 and res[side]["tokens_per_s"] > 0 and res[side]["peak_rss_mb"] > 0
    assert res["agreement"]["spearman"] > 0.9999 and res["agreement"]["max_abs_err_over_scale"] < 1e-5
    assert res["agreement"]["top10_overlap"] == 1.0
    # the error over max‖g‖·‖ḡ‖ = the scale-relative error × the cancellation max|Dot| / (max‖g‖·‖ḡ‖) ≤ 1
    assert 0 < res["cancellation"] <= 1.0
    assert res["agreement"]["max_abs_err_over_norms"] == pytest.approx(
        res["agreement"]["max_abs_err_over_scale"] * res["cancellation"], rel=1e-9)
    assert res["spec"]["n_actual"] == 12 and res["dattri_llm_version"] == "0.1.0"
    # LESS: our exact features vs dattri-llm's LESSAttributor on the same warm-up checkpoints. With the same Adam
    # convention (torch's bias-corrected update) the engines agree to float precision; LESS's own convention
    # (ε inside the root, no bias correction) is what the pipeline uses and reorders a little.
    less = res["less"]
    assert less["agreement_same_adam_convention"]["max_abs_err_over_scale"] < 1e-5
    assert less["agreement_same_adam_convention"]["spearman"] > 0.9999
    assert 0 < less["ours_fp32_vs_fp64"]["max_abs_err_over_scale"] < 1e-5  # fp32 inner products: rounding only
    assert 0.95 < less["agreement"]["spearman"] < 0.9999
    # the pipeline's projected LESS (sparse JL, k = 8192) against our exact LESS, from the same checkpoints
    assert less["projected_vs_exact"]["spearman"] > 0.95 and less["projected_vs_exact"]["proj_dim"] == 8192
    assert less["ours"]["seconds"] > 0 and less["dattri_llm"]["seconds"] > 0 and less["setup"]["checkpoints"] == 2

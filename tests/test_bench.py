"""``python -m diq.tools.bench influence`` (engine vs the batch-size-1 loop, fast modes) and ``projection`` on the tiny
model: the paths behind the README's benchmark JSON, run in CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_influence_bench_agrees_with_the_loop_and_records_its_command(tmp_path, tiny_path):
    from diq.tools.bench import main

    out = tmp_path / "bench.json"
    argv = ["influence", "--model", "tiny", "--n", "6", "--max-len", "96", "--val-per-task", "3", "--batch-tokens",
            "4096", "--skip-epoch", "--skip-selection", "--modes", "seed_vs_seed", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["command"] == "diq bench " + " ".join(argv)
    assert res["n"] == 6 and res["batch_tokens"] == 4096 and res["torch"]
    # batched engine (one padded batch) against the one-sample autograd loop
    assert res["max_abs_err_over_scale"] < 1e-5 and res["loop_spearman"] > 0.999
    assert 0 < res["cancellation"] <= 1.0
    (mode,) = res["modes"]
    assert mode["name"] == "seed_vs_seed" and -1.0 <= mode["spearman"] < 1.0  # another LoRA init: not the same scores


def test_projection_bench_times_both_projectors(tmp_path, tiny_path):
    from diq.tools.bench import main

    out = tmp_path / "proj.json"
    assert main(["projection", "--models", "tiny", "--k", "256", "--batch", "2", "--dense-modules", "2",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["command"].startswith("diq bench projection --models tiny")
    (row,) = res["rows"]
    assert row["model"] == "tiny" and row["k"] == 256 and row["batch"] == 2 and row["rademacher_timed_modules"] == 2
    assert row["d"] == 114688 and row["sjlt_seconds_per_batch"] > 0 and row["rademacher_seconds_per_batch"] > 0


def test_performance_tables_are_rendered_from_the_benchmark_json(tmp_path):
    """docs/performance.md's benchmark tables are exactly what `diq bench docs` renders from benchmarks/*.json, and a
    changed figure in a JSON makes the check fail (so no table can be edited by hand)."""
    import shutil

    from diq.errors import DiqError
    from diq.tools.bench_docs import apply

    root = Path(__file__).resolve().parents[1]
    assert apply(root / "docs" / "performance.md", root / "benchmarks", check=True)
    bench = tmp_path / "benchmarks"
    shutil.copytree(root / "benchmarks", bench)
    page = tmp_path / "performance.md"
    shutil.copy(root / "docs" / "performance.md", page)
    d = json.loads((bench / "influence_cpu_auto.json").read_text())
    d["engine_seconds"] = 1.0
    (bench / "influence_cpu_auto.json").write_text(json.dumps(d))
    with pytest.raises(DiqError, match="differ from"):
        apply(page, bench, check=True)
    assert not apply(page, bench) and "| 1.0 |" in page.read_text() and apply(page, bench, check=True)

"""The planted-knowledge domain (diq/knowledge.py), the oracle, and a CI-sized proof that a selection reaches the
fine-tune and the number in the table (experiment=sensitivity, reduced)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from conftest import ROOT, compose
from diq import knowledge
from diq.errors import DiqError


def test_knowledge_files_regenerate_byte_for_byte(tmp_path):
    files = knowledge.write(tmp_path)
    for f in files:
        assert (knowledge.DATA / f.name).read_bytes() == f.read_bytes(), f"{f.name}: run python -m diq.knowledge"


def test_the_domain_states_each_fact_three_ways():
    ents = knowledge.entities()
    bench = [json.loads(x) for x in (knowledge.DATA / "benchmark.jsonl").read_text().splitlines()]
    val = [json.loads(x) for x in (knowledge.DATA / "validation.jsonl").read_text().splitlines()]
    assert len(ents) == 40 and len({e["drug"] for e in ents}) == 40 and len(bench) == 160 and len(val) == 80
    assert collections.Counter(b["answer"] for b in bench) == {"A": 40, "B": 40, "C": 40, "D": 40}  # chance 25 %
    by_drug = {e["drug"]: e for e in ents}
    for b in bench:
        _, drug, attr = b["id"].split(":")
        assert b["options"]["ABCD".index(b["answer"])] == by_drug[drug][attr]
        others = {e[attr] for e in ents if e["drug"] != drug}
        assert len(set(b["options"])) == 4 and set(b["options"]) - {by_drug[drug][attr]} <= others
    teach = knowledge.in_domain(ents)
    qs = {b["question"] for b in bench} | {v["question"] for v in val}
    assert not qs & {t["question"] for t in teach} and not {b["question"] for b in bench} & {v["question"] for v in val}
    # every fact of a drug is stated in its teaching sample's reasoning
    assert all(by_drug[d][a] in t["reasoning"] for t, d in zip(teach, [e["drug"] for e in ents]) for a in knowledge.ATTRS)
    wrong = knowledge.wrong_copies(ents, 12)
    assert len(wrong) == 12 and not {w["id"] for w in wrong} & {t["id"] for t in teach}
    for w in wrong:  # one fact swapped, stated consistently
        t = next(t for t in teach if t["question"] == w["question"])
        assert w["response"] != t["response"] and w["reasoning"] != t["reasoning"]


def test_origins_are_hidden_and_the_oracle_reads_them():
    from diq.selection import Oracle

    pool = [{"id": f"o{i}", "question": "q", "reasoning": "r", "response": "a"} for i in range(10)]
    recs, origins = knowledge.plant(pool, OmegaConf.create({"n_entities": 8, "n_wrong": 2, "seed": 0}))
    assert len(recs) == 20 and collections.Counter(origins.values()) == {"original": 10, "in_domain": 8, "corrupted": 2}
    assert all(r["id"].startswith("pk:") for r in recs[10:])  # the id does not say which kind it is
    o = Oracle("oracle")
    o.origins = origins
    assert o.k(recs) == 8 and set(o.select(recs, {}, 8).ids) == {i for i, v in origins.items() if v == "in_domain"}
    with pytest.raises(DiqError, match="planted pool"):
        Oracle("oracle").k(recs)


def test_oracle_without_a_planted_pool_is_refused_before_compute():
    from diq.validate import validate

    cfg = compose(["selection=oracle", "debug=tiny"])
    with pytest.raises(DiqError, match=r"selection=oracle reads a planted pool's hidden origins[\s\S]*pool=knowledge"):
        validate(cfg)


def _cell(selection: str, tmp: Path, cache: Path, data: Path, **over) -> dict:
    from diq.run import run

    args = ["experiment=sensitivity", f"selection={selection}", f"cache_dir={cache}", "logger=disabled",
            "pool.limit=12", "pool.planted.n_entities=8", "pool.planted.n_wrong=2",
            "train.effective_batch=2", "train.micro_batch=2",  # 8 samples: 4 steps an epoch, 40 in all
            f"eval.tasks.0.local.path={data / 'benchmark.jsonl'}", f"eval.tasks.0.validation.path={data / 'validation.jsonl'}",
            *[f"{k}={v}" for k, v in over.items()]]
    cfg = compose(args)
    with open_dict(cfg):
        cfg.output_dir = str(tmp / selection)
    return run(cfg)


@pytest.mark.slow
def test_a_selection_effect_reaches_the_table(tmp_path, shared_models):
    """SmolLM2 on an 8-drug domain (32 benchmark items): the oracle (the 8 teaching samples) against the same number
    of samples chosen by length (none of them in-domain) and the base model. If every strategy trained on the same
    samples, or selection stopped reaching the fine-tune, the two tuned rows would tie."""
    from diq import report

    data = tmp_path / "data"
    knowledge.write(data, n=8)
    cache = shared_models  # SmolLM2 is built there once
    base = _cell("none", tmp_path, cache, data)
    oracle = _cell("oracle", tmp_path, cache, data)
    k = oracle["n_selected"]
    length = _cell("length", tmp_path, cache, data, **{"budget.fraction": k / oracle["n_pool"]})
    assert k == 8 and length["n_selected"] == 8 and length["planted"]["precision_in_domain"] == 0
    acc = {n: r["averages"]["AvgA"] for n, r in (("base", base), ("oracle", oracle), ("length", length))}
    assert acc["oracle"] - acc["base"] >= 0.25, acc
    assert acc["oracle"] - acc["length"] >= 0.25, acc
    out = tmp_path / "results"
    assert report.main(["--records", str(tmp_path), "--table", "s", "--out", str(out), "--reference", "length"]) == 0
    rows = {r["strategy"]: r for r in __import__("csv").DictReader((out / "s.csv").read_text().splitlines())}
    assert float(rows["oracle"]["delta_base_ci_low"]) > 0  # the table carries the effect, with its paired CI
    assert ROOT.exists()

"""The planted-knowledge domain (diq/stages/pool/knowledge.py), the oracle, and a CI-sized proof that a selection reaches the
fine-tune and the number in the table (experiment=sensitivity, reduced)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from conftest import compose
from diq.errors import DiqError
from diq.stages.pool import knowledge


def test_knowledge_files_regenerate_byte_for_byte(tmp_path):
    files = knowledge.write(tmp_path)
    for f in files:
        assert (knowledge.DATA / f.name).read_bytes() == f.read_bytes(), f"{f.name}: run python -m diq.stages.pool.knowledge"


def test_the_domain_states_each_fact_three_ways():
    ents = knowledge.entities()
    bench = [json.loads(x) for x in (knowledge.DATA / "benchmark.jsonl").read_text().splitlines()]
    val = [json.loads(x) for x in (knowledge.DATA / "validation.jsonl").read_text().splitlines()]
    assert len(ents) == 40 and len({e["drug"] for e in ents}) == 40 and len(bench) == 160 and len(val) == 80
    assert collections.Counter(b["answer"] for b in bench) == {"A": 40, "B": 40, "C": 40, "D": 40}  # chance 25 %
    by_drug = {e["drug"]: e for e in ents}
    decoys = knowledge.decoys(ents)
    wrong = {(ents[i]["drug"], a): ents[j][a] for i, a, j in knowledge.swaps(ents, 12)}
    assert len(wrong) == 12
    for b in bench:
        _, drug, attr = b["id"].split(":")
        assert b["options"]["ABCD".index(b["answer"])] == by_drug[drug][attr]
        # distractors: values no teaching sample states, plus the wrong value of the fact's wrong-fact copy
        distract = set(b["options"]) - {by_drug[drug][attr]}
        assert len(set(b["options"])) == 4 and not distract & {e[attr] for e in ents} - {wrong.get((drug, attr))}
        assert distract - set(decoys[attr]) == ({wrong[drug, attr]} if (drug, attr) in wrong else set())
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
    from diq.stages.select.strategies import Oracle

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
    from diq.run.validate import validate

    cfg = compose(["selection=oracle", "debug=tiny"])
    with pytest.raises(DiqError, match=r"selection=oracle reads a planted pool's hidden origins[\s\S]*pool=knowledge"):
        validate(cfg)


def _cell(selection: str, tmp: Path, cache: Path, **over) -> dict:
    from diq.run import run

    cfg = compose(["experiment=sensitivity", "debug=tiny", f"selection={selection}", f"cache_dir={cache}",
                   "eval.limit=null", *[f"{k}={v}" for k, v in over.items()]])
    with open_dict(cfg):
        cfg.output_dir = str(tmp / selection)
    return run(cfg)


def _margins(rec: dict) -> list[float]:
    """Per benchmark item: log-likelihood of the gold option minus the mean of the three distractors'."""
    items = json.loads((Path(rec["per_item"]) / "knowledge_mcq.json").read_text())
    out = []
    for it in items:
        lls = [float(r[0][0]) for r in it["resps"]]
        g = int(it["target"])
        out.append(lls[g] - (sum(lls) - lls[g]) / (len(lls) - 1))
    return out


def test_selection_reaches_the_fine_tune_and_the_table(tmp_path, cache_dir):
    """CI-sized (tiny model, the 160-item benchmark): the oracle's 40 teaching samples against 40 samples chosen by
    length (none in-domain), trained alike. If every strategy trained on the same samples, or selection stopped
    reaching the fine-tune, the two adapters, their per-item scores and the pinned values below would coincide. The
    tiny model learns too little in 3 epochs to move accuracy (the effect itself is measured on SmolLM2:
    results/sensitivity.md); what it shows is the wiring, and that per-item correctness in the record agrees with
    the task's score (paired statistics read it)."""
    from diq import report

    train = {"train.epochs": 3, "train.lr": 1e-2}
    oracle = _cell("oracle", tmp_path, cache_dir, **train)
    length = _cell("length", tmp_path, cache_dir, **{"budget.fraction": oracle["n_selected"] / oracle["n_pool"]},
                   **train)
    assert oracle["n_pool"] == length["n_pool"] == 152 and oracle["n_selected"] == length["n_selected"] == 40
    assert oracle["planted"]["precision_in_domain"] == 1.0 and length["planted"]["precision_in_domain"] == 0.0
    assert oracle["selection_hash"] != length["selection_hash"]
    assert oracle["train"]["cache"] != length["train"]["cache"]  # a different adapter, not a reused one
    for rec in (oracle, length):  # the record's per-item correctness is the task's score, item by item
        t = rec["eval"]["tasks"]["knowledge_mcq"]
        assert t["per_item_correct"]["correct"].count("1") == round(t["value"] * t["n"]) and t["n"] == 160
    mo, ml = _margins(oracle), _margins(length)
    assert sum(abs(a - b) for a, b in zip(mo, ml)) > 1.0  # the two fine-tunes score the items differently
    # pinned (tiny model, seed 0): selection hashes and accuracies
    assert oracle["selection_hash"][:12] == "8579723ba17f" and length["selection_hash"][:12] == "4c7b3d29de38"
    assert (oracle["averages"]["AvgA"], length["averages"]["AvgA"]) == pytest.approx((0.225, 0.25))
    out = tmp_path / "results"
    assert report.main(["--records", str(tmp_path), "--table", "s", "--out", str(out), "--reference", "length"]) == 0
    row = next(r for r in __import__("csv").DictReader((out / "s.csv").read_text().splitlines())
               if r["strategy"] == "oracle")
    assert row["reference"].startswith("length @") and float(row["delta_ref"]) == pytest.approx(-2.5, abs=0.01)
    assert row["mcnemar_p"] != "" and float(row["delta_ref_ci_low"]) < 0 < float(row["delta_ref_ci_high"])


def test_item_kinds_follow_what_the_selection_taught():
    ents = knowledge.entities()
    good, bad = knowledge.in_domain(ents), knowledge.wrong_copies(ents, 12)
    (i, attr, _), (i2, attr2, _) = knowledge.swaps(ents, 12)[:2]
    bench = knowledge.benchmark(ents)
    pos = {b["id"]: n for n, b in enumerate(bench)}
    kinds = knowledge.item_kinds({good[i]["id"], bad[0]["id"], bad[1]["id"]})
    assert kinds[pos[f"bench:{ents[i]['drug']}:{attr}"]] == "both"
    other = next(a for a in knowledge.ATTRS if a != attr)  # the same drug's other facts: taught right
    assert kinds[pos[f"bench:{ents[i]['drug']}:{other}"]] == "right"
    assert kinds[pos[f"bench:{ents[i2]['drug']}:{attr2}"]] == "wrong"
    assert sum(k == "untaught" for k in kinds) == 160 - 4 - 1
    assert knowledge.item_kinds(set()) == ["untaught"] * 160

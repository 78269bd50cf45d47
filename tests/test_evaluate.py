"""Evaluation through lm-eval on local tasks whose answers are known, checked against an independent
log-likelihood computation; the answer extractor on known strings; AvgS/AvgC/AvgA."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from diq.errors import DiqError
from diq.evaluate import aggregate, evaluate
from diq.tasks.mcq import extract_letter, mc_text, pubmedqa_split, read_local_mcq


@pytest.mark.parametrize("text,expected", [
    ("Long thinking... The answer is C.", "C"),
    ("the answer is: (B) because", "B"),
    ("## Thinking\n\nA or B?\n\n## Final Response\n\nB) is right", "B"),
    ("## Final Response\n\nIt is most likely maybe.", "C"),  # option text fallback (yes/no/maybe)
    ("I cannot tell.", "[invalid]"),
    ("The answer is A. Wait, no: the answer is B", "B"),
])
def test_extract_letter(text, expected):
    assert extract_letter(text, ["A", "B", "C"], ["yes", "no", "maybe"]) == expected


def test_pubmedqa_splits_are_disjoint_and_official():
    test, train = pubmedqa_split("test"), pubmedqa_split("train")
    assert len(test) == 500 and len(train) == 500
    assert not {d["id"] for d in test} & {d["id"] for d in train}


def test_aggregate_over_present_tasks():
    per = {"s1": {"value": 0.5}, "s2": {"value": 0.7}, "c1": {"value": 0.2}, "x": {"value": 0.9}}
    specs = [{"name": "s1", "category": "S"}, {"name": "s2", "category": "S"}, {"name": "c1", "category": "C"},
             {"name": "x", "category": None}]
    avg = aggregate(per, specs)
    assert avg["AvgS"] == pytest.approx(0.6) and avg["AvgC"] == pytest.approx(0.2)
    assert avg["AvgA"] == pytest.approx((0.5 + 0.7 + 0.2) / 3)


def _independent_mc_accuracy(model_path, docs):
    """Pick the letter with the highest log-likelihood after the prompt, outside lm-eval."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    correct = 0
    for d in docs:
        ctx = tok(mc_text(d), add_special_tokens=False)["input_ids"]
        best, best_ll = None, -1e30
        for i, letter in enumerate(d["letters"]):
            cont = tok(mc_text(d) + " " + letter, add_special_tokens=False)["input_ids"][len(ctx):]
            ids = torch.tensor([ctx + cont])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].double(), -1)
            ll = sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
            if ll > best_ll:
                best, best_ll = i, ll
        correct += best == d["answer"]
    return correct / len(docs)


def test_local_mc_task_matches_independent_loglikelihood(tiny_path, tmp_path):
    bench = tmp_path / "bench.jsonl"
    rows = [{"question": f"Which organ filters blood number {i}?", "options": ["kidney", "lung", "skin", "bone"],
             "answer": "ABCD"[i % 4]} for i in range(12)]
    bench.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = OmegaConf.create({"batch_size": 4, "limit": None, "device": "cpu", "seed": 1234, "max_gen_toks": 8,
                            "tasks": [{"name": "bench", "category": "S", "chat_template": False,
                                       "local": {"path": str(bench), "mode": "mc"}}]})
    res = evaluate(tiny_path, None, cfg)
    expected = _independent_mc_accuracy(tiny_path, read_local_mcq(str(bench)))
    assert res["tasks"]["bench"]["n"] == 12
    assert res["tasks"]["bench"]["value"] == pytest.approx(expected)
    assert res["averages"]["AvgS"] == pytest.approx(expected)


def test_unknown_task_and_missing_file(tiny_path, tmp_path):
    cfg = OmegaConf.create({"batch_size": 4, "limit": 2, "device": "cpu", "seed": 0, "max_gen_toks": 8,
                            "tasks": [{"name": "medqa_4optionz", "category": "S"}]})
    with pytest.raises(DiqError, match=r"'medqa_4optionz' is not a diq or lm-eval task; did you mean medqa_4options"):
        evaluate(tiny_path, None, cfg)
    cfg.tasks = [{"name": "b", "local": {"path": str(tmp_path / "none.jsonl"), "mode": "mc"}}]
    with pytest.raises(DiqError, match="benchmark file not found"):
        evaluate(tiny_path, None, cfg)

"""Evaluation through lm-eval on local tasks whose answers are known, checked against an independent
log-likelihood computation; the answer extractor on known strings; AvgS/AvgC/AvgA."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from diq.errors import DiqError
from diq.stages.evaluate.harness import aggregate, evaluate
from diq.tasks.mcq import extract_letter, mc_text, pubmedqa_split, read_local_mcq


@pytest.mark.parametrize("text,expected", [
    ("Long thinking... The answer is C.", "C"),
    ("the answer is: (B) because", "B"),
    ("## Thinking\n\nA or B?\n\n## Final Response\n\nB) is right", "B"),
    ("## Final Response\n\nMaybe.", "C"),  # the final response *is* an option's text
    ("## Final Response\n\nIt is most likely maybe.", "[invalid]"),  # a trailing option word decides nothing
    ("I cannot tell.", "[invalid]"),
    ("The answer is A. Wait, no: the answer is B", "B"),
    ("(B) is unlikely; the correct choice is C", "C"),  # the review's three probes
    ("…There is no", "[invalid]"),
    ("lacks vitamin D.", "[invalid]"),
    ("A. yes\nB. no\nC. maybe", "[invalid]"),  # repeating the option list is not an answer
    ("Answer: B", "B"),
])
def test_extract_letter(text, expected):
    assert extract_letter(text, ["A", "B", "C"], ["yes", "no", "maybe"]) == expected


@pytest.mark.parametrize("text,expected", [
    ("(B) is unlikely; the correct choice is C", ("C", "answer_is")),
    ("lacks vitamin D.", ("[invalid]", "none")),
    ("A. Vitamin A\nB. Vitamin B12\nC. Vitamin C\nD. Vitamin D", ("[invalid]", "none")),
    ("## Final Response\n\n**D**", ("D", "label")),
    ("## Final Response\n\nVitamin B12", ("B", "option_text")),
])
def test_match_answer_rules(text, expected):
    from diq.tasks.mcq import match_answer

    assert match_answer(text, list("ABCD"), ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]) == expected


def test_huatuo_matcher_always_answers():
    from diq.tasks.mcq import match_huatuo

    opts = ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]
    assert match_huatuo("## Final Response\n\nThe answer is C.", list("ABCD"), opts) == ("C", "answer_is")
    assert match_huatuo("lacks vitamin D.", list("ABCD"), opts) == ("D", "letter")
    assert match_huatuo("it is vitamin b12 here", list("ABCD"), opts) == ("B", "option_text")
    assert match_huatuo("zzz", list("ABCD"), opts)[1] == "most_similar"


def test_wilson_interval():
    from diq.stages.evaluate.harness import wilson

    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0.0, 10)[0] == 0.0 and wilson(0.5, 0) is None


def test_outcome_stats_letter_bias():
    from diq.stages.evaluate.harness import outcome_stats

    outs = [{"pred": "A", "gold": g, "rule": "answer_is"} for g in "AABCDDDDDD"]
    st = outcome_stats(outs)
    assert st["letter_bias_warning"] and st["top_pred_share"] == 1.0
    assert st["majority_letter_baseline"] == pytest.approx(0.6) and st["rules"] == {"answer_is": 1.0}
    st = outcome_stats(outs[:5] + [{"pred": "B", "gold": "B", "rule": "label"}] * 5)
    assert not st["letter_bias_warning"] and st["rules"] == {"answer_is": 0.5, "label": 0.5}


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
    # per-item correctness in the record adds up to the score (lm-eval logs the target index as text)
    t = res["tasks"]["bench"]
    assert t["per_item_correct"]["correct"].count("1") == round(expected * 12)
    assert t["gold_letters"] == {"A": 3, "B": 3, "C": 3, "D": 3}


def test_unknown_task_and_missing_file(tiny_path, tmp_path):
    cfg = OmegaConf.create({"batch_size": 4, "limit": 2, "device": "cpu", "seed": 0, "max_gen_toks": 8,
                            "tasks": [{"name": "medqa_4optionz", "category": "S"}]})
    with pytest.raises(DiqError, match=r"'medqa_4optionz' is not a diq or lm-eval task; did you mean medqa_4options"):
        evaluate(tiny_path, None, cfg)
    cfg.tasks = [{"name": "b", "local": {"path": str(tmp_path / "none.jsonl"), "mode": "mc"}}]
    with pytest.raises(DiqError, match="benchmark file not found"):
        evaluate(tiny_path, None, cfg)


def test_an_edited_benchmark_file_is_evaluated_again_not_read_from_the_cache(tmp_path):
    """The generations' cache key holds the content hash of every local file the eval config names: editing a local
    benchmark (same path) changes the key, so its earlier generations are never reused for the new content."""
    from diq.stages.evaluate import data_files

    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"id": "a", "question": "q?", "options": ["x", "y"], "answer": "A"}\n')
    cfg = {"tasks": [{"name": "t", "local": {"path": str(bench)}}], "path": None, "prompt": "diq",
           "knowledge": "pkg://diq/data/knowledge/benchmark.jsonl"}
    before = data_files(cfg)
    assert set(before) == {str(bench), "pkg://diq/data/knowledge/benchmark.jsonl"}
    bench.write_text('{"id": "a", "question": "q?", "options": ["x", "z"], "answer": "A"}\n')
    after = data_files(cfg)
    assert after[str(bench)] != before[str(bench)] and after["pkg://diq/data/knowledge/benchmark.jsonl"] == \
        before["pkg://diq/data/knowledge/benchmark.jsonl"]

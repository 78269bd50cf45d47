"""Decontamination: exact question matches and 13-gram overlaps against the run's benchmarks; warn/drop/fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diq.errors import DiqError
from diq.run import run
from diq.tasks import decontam
from diq.tasks.mcq import pubmedqa_split


def test_exact_and_ngram_detection():
    docs = {"bench": [{"id": "b1", "question": "What is the most likely diagnosis in a 45-year-old man with chest pain "
                                              "radiating to the left arm and diaphoresis?", "context": ""}]}
    samples = [
        {"id": "exact", "question": "what is the MOST likely diagnosis in a 45 year old man with chest pain radiating "
                                    "to the left arm, and diaphoresis", "reasoning": "", "response": "MI"},
        {"id": "ngram", "question": "Consider this.", "reasoning": "A man with chest pain radiating to the left arm and "
                                                                   "diaphoresis suggests MI", "response": "MI"},
        {"id": "short", "question": "Chest pain radiating to the left arm?", "reasoning": "", "response": "MI"},
        {"id": "clean", "question": "What causes scurvy?", "reasoning": "", "response": "vitamin C deficiency"},
    ]
    rep = decontam.check(samples, docs, n=8)
    assert [x["id"] for x in rep.exact] == ["exact"]
    assert [x["id"] for x in rep.ngram] == ["ngram"]
    assert rep.ngram[0]["task"] == "bench" and rep.ngram[0]["doc"] == "b1"
    assert [s["id"] for s in decontam.apply("drop", "pool", samples, rep)] == ["short", "clean"]
    assert len(decontam.apply("warn", "pool", samples, rep)) == 4
    with pytest.raises(DiqError, match=r"2 pool sample\(s\) overlap evaluation benchmarks[\s\S]*decontaminate=drop"):
        decontam.apply("fail", "pool", samples, rep)


def test_pipeline_drops_leaked_pubmedqa_test_items(run_cfg, tmp_path):
    test = pubmedqa_split("test")[:3]
    rows = [{"question": d["question"], "reasoning": "because", "response": "yes"} for d in test]
    rows += [{"question": f"Unrelated question number {i} about anatomy?", "reasoning": "r", "response": "a"}
             for i in range(27)]
    pool = tmp_path / "leaky.jsonl"
    pool.write_text("\n".join(json.dumps(r) for r in rows))
    base = ["pool=local", f"pool.path={pool}", "budget.fraction=0.5", "stop_after=select"]
    rec = run(run_cfg(*base, "decontaminate=drop", out="drop"))
    d = rec["decontamination"]
    assert d["pool"]["n_exact"] == 3 and d["benchmarks"]["pubmedqa_pqal_cot"] == 500
    assert rec["n_pool_raw"] == 30 and rec["n_pool"] == 27 and rec["n_selected"] == round(0.5 * 27)
    ids = set(json.loads(Path(rec["selected_ids_path"]).read_text()))
    assert len(ids) == 14
    warned = run(run_cfg(*base, "decontaminate=warn", out="warn"))
    assert warned["n_pool"] == 30 and warned["decontamination"]["pool"]["n_contaminated"] == 3
    with pytest.raises(DiqError, match="3 pool sample"):
        run(run_cfg(*base, "decontaminate=fail", out="fail"))


def test_validation_items_are_checked(run_cfg):
    rec = run(run_cfg("selection=influence", "stop_after=select", "scoring.influence.max_length=128", out="val"))
    v = rec["decontamination"]["validation"]
    assert v["n_checked"] == 20 and v["n_contaminated"] == 0  # train side of PQA-L vs its test side


def _huatuo_docs() -> dict[str, list[dict]]:
    from diq.tasks import bundle

    fixture = Path(__file__).resolve().parents[1] / "diq" / "data" / "hub_fixtures" / "bundle"
    out = {}
    for name in ("huatuo_o1_eval_data.json", "eval_data.json"):
        for src, ds in bundle.read(fixture / name).items():
            out[f"{name}:{src}"] = [{"id": d["id"], "question": d["question"], "context": d["context"]} for d in ds]
    return out


def test_short_questions_are_caught_when_copied_and_scaffolding_is_not_content():
    """Recall on the copy patterns real pools show, against HuatuoGPT-o1's file in shape; no flag on clean text."""
    docs = _huatuo_docs()
    mc = docs["huatuo_o1_eval_data.json:MedMCQA_validation"]
    three = next(d for d in mc if len(d["question"].split()) == 4)  # e.g. "Antidote for xa249ff poisoning"
    twelve = "Which nerve is injured in fracture of the surgical neck of humerus?"  # 12 words: no 13-gram
    docs["medmcqa_more"] = [{"id": "m1", "question": twelve}]
    pubmed = docs["huatuo_o1_eval_data.json:PubMedQA_test"][0]["question"].split("\n")[0]
    samples = [
        {"id": "prefixed", "question": f"Question: {three['question']}\nA. x\nB. y\nC. z\nD. w", "reasoning": "r",
         "response": "The answer is B."},
        {"id": "in-response", "question": "Explain this case.", "reasoning": "Thinking.", "response": f"{twelve}."},
        {"id": "nfkc", "question": "Why?", "reasoning": "", "response": three["question"].upper().replace("A", "Ａ")},
        {"id": "instruction-only", "question": pubmed, "reasoning": "I will read it.", "response": "Understood."},
        {"id": "clean", "question": "Antidote for paracetamol poisoning?", "reasoning": "NAC.", "response": "NAC"},
    ]
    rep = decontam.check(samples, docs, n=13)
    assert sorted(rep.ids) == ["in-response", "nfkc", "prefixed"]
    assert {x["id"]: x["kind"] for x in rep.short}["prefixed"] == "short question contained"
    assert decontam.normalize("ﬁxation ＡＢＣ") == "fixation abc"


def test_no_flag_on_the_bundled_pool_against_every_fixture_benchmark():
    """False positives: the 198 real medical-o1 samples against both bundle fixtures, the 500 PubMedQA test items and
    the hub fixtures' test splits: none is flagged (measured: 0 of 198)."""
    from diq.tools.fixtures import medmcqa, medqa, mmlu_pro

    demo = json.loads((Path(__file__).resolve().parents[1] / "diq" / "data" / "medical_o1_demo.json").read_text())
    pool = [{"id": str(i), "question": r["Question"], "reasoning": r["Complex_CoT"], "response": r["Response"]}
            for i, r in enumerate(demo)]
    docs = _huatuo_docs()
    docs["pubmedqa"] = [{"id": d["id"], "question": d["question"], "context": d["context"]}
                        for d in pubmedqa_split("test")]
    docs["medqa"] = [{"id": r["id"], "question": r["sent1"]} for r in medqa("test", 60)]
    docs["medmcqa"] = [{"id": r["id"], "question": r["question"]} for r in medmcqa("validation", 60)]
    docs["mmlu_pro"] = [{"id": str(r["question_id"]), "question": r["question"]} for r in mmlu_pro("test", 60)]
    assert len(pool) == 198
    rep = decontam.check(pool, docs, n=13)
    assert rep.ids == set(), rep.flagged[:3]

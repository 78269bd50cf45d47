"""HuatuoGPT-o1's evaluation as users have it: its file loads unchanged (eval.bundle=huatuo_o1), its scorer is
reproduced item for item (a 450-reply differential corpus, labels in tests/data), diq's matcher reads the final
response first, and a change of matcher re-scores the cached generations."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diq.tasks.answers import huatuo_choice, huatuo_output, match_answer, match_huatuo, score_items

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
TYPE = {"answer_is": 1, "letter": 1, "option_text": 2, "most_similar": 3}  # the reference's ans_type


def _corpus() -> list[dict]:
    return [json.loads(line) for line in (DATA / "huatuo_replies.jsonl").read_text(encoding="utf-8").splitlines()]


def test_the_corpus_covers_every_kind_of_reply():
    rows = _corpus()
    outs = [r["output"] for r in rows]
    assert len(rows) >= 400
    assert sum(o.strip() in ("", "</s>") for o in outs) >= 20  # empty replies
    assert any("## Final Response\n\n" in o for o in outs) and any("_" in o for o in outs)
    assert any(any("\u4e00" <= c <= "\u9fff" for c in o) for o in outs) and any("é" in o for o in outs)
    assert {r["expected"]["type"] for r in rows} == {1, 2, 3}
    assert max(len(r["options"]) for r in rows) == 10
    # "answer is X" with X not an option is accepted by the reference
    assert any(r["expected"]["type"] == 1 and r["expected"]["last"] not in r["options"] for r in rows)


def test_huatuo_extraction_agrees_with_the_reference_on_every_reply():
    rows = _corpus()
    got = [huatuo_choice(huatuo_output(r["output"]), list(r["options"]), list(r["options"].values())) for r in rows]
    bad = [(r["id"], r["output"][:60], g, r["expected"]) for r, g in zip(rows, got)
           if (g[0], g[1], TYPE[g[2]]) != (r["expected"]["first"], r["expected"]["last"], r["expected"]["type"])]
    assert not bad, bad[:5]


def test_huatuo_per_source_scores_equal_the_reference():
    """Per source: max(first-match, last-match accuracy), as HuatuoGPT-o1's score() computes it."""
    want = json.loads((DATA / "huatuo_scores.json").read_text())
    by_src = collections.defaultdict(list)
    for r in _corpus():
        by_src[r["source"]].append({"resp": r["output"], "letters": list(r["options"]),
                                    "options": [o.strip() for o in r["options"].values()],
                                    "options_raw": list(r["options"].values()), "gold": r["answer_idx"]})
    assert set(by_src) == set(want)
    taken = set()
    for src, items in by_src.items():
        s, outs = score_items(items, "huatuo")
        w = want[src]
        assert s["n"] == w["n"] and s["value"] == pytest.approx(w["score"], abs=1e-12), src
        assert s["huatuo"]["first_match_acc"] == pytest.approx(w["first_correct"] / w["n"])
        assert s["huatuo"]["last_match_acc"] == pytest.approx(w["last_correct"] / w["n"])
        taken.add(s["huatuo"]["taken"])
        assert 0 <= s["strict"] <= 1 and len(outs) == len(items)  # diq's strict score beside it
    assert taken == {"first", "last"}  # the corpus exercises both branches of the max


OPTS = ["Type I", "Type II", "Type III", "Type IV"]


@pytest.mark.parametrize("text,options,expected", [
    ("", OPTS, ("D", "D", "most_similar")),                                   # empty: the last option
    (" </s>", OPTS, ("D", "D", "most_similar")),
    ("zzz", ["abc", "abd"], ("B", "B", "most_similar")),                     # a similarity tie: the later option
    ("The answer is Hepatitis B", OPTS, ("H", "H", "answer_is")),            # any capital A-N after "answer is"
    ("The answer is: B", OPTS, ("B", "B", "letter")),                        # ":" is not whitespace
    ("type iii disease", OPTS, ("A", "A", "option_text")),                   # "type i" (a prefix) ties "type iii": A
    ("B_C are wrong, D", OPTS, ("D", "D", "letter")),                        # "_" is a word character
    ("Bé or C", OPTS, ("C", "C", "letter")),                                  # so is "é"
    ("答案是B。", OPTS, ("B", "B", "letter")),                                 # CJK neighbours
    ("A,B", OPTS, ("A", "A", "letter")),                                      # neighbours are consumed
    ("A patient", OPTS, ("A", "A", "most_similar")),                         # "A " is an article, not a letter
    ("## Thinking\n\nThe answer is A\n\n## Final Response\n\nC", OPTS, ("C", "C", "letter")),
    ("## Thinking\nThe answer is A\n## Final Response\nB", OPTS, ("A", "A", "answer_is")),  # no "\n\n": no split
])
def test_huatuo_rules_worked_by_hand(text, options, expected):
    assert huatuo_choice(huatuo_output(text), list("ABCD")[: len(options)], options) == expected


FINAL_ONLY = [  # the thinking names a letter it rejects; the final response gives the option text
    ("## Thinking\n\nThe answer is B? No.\n\n## Final Response\n\nVitamin C", "C", "option_text"),
    ("## Thinking\n\nThe answer is A, or not.\n\n## Final Response\n\nVitamin D", "D", "option_text"),
    ("## Thinking\n\nthe correct answer is B... wait\n\n## Final Response\n\n(C)", "C", "label"),
    ("## Thinking\n\nThe answer is D\n\n## Final Response\n\nThe answer is A.", "A", "answer_is"),
    ("## Thinking\n\nThe answer is B.\n\n## Final Response\n\nI am not sure.", "B", "thinking_answer_is"),
]


@pytest.mark.parametrize("text,letter,rule", FINAL_ONLY)
def test_diq_matcher_reads_the_final_response_first(text, letter, rule):
    opts = ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]
    assert match_answer(text, list("ABCD"), opts) == (letter, rule)


def test_diq_matcher_option_text_is_case_sensitive_only_when_case_decides():
    geno = ["bb bb", "Bb Bb", "BB Bb", "bB bb"]
    assert match_answer("## Final Response\n\nBb Bb", list("ABCD"), geno) == ("B", "option_text")
    assert match_answer("## Final Response\n\nbB bb", list("ABCD"), geno) == ("D", "option_text")
    assert match_answer("## Final Response\n\nBB BB", list("ABCD"), geno) == ("[invalid]", "none")
    assert match_answer("## Final Response\n\nvitamin c", list("ABC"), ["Vitamin A", "Vitamin B", "Vitamin C"]) == \
        ("C", "option_text")
    assert match_huatuo("", list("ABCD"), geno) == ("D", "most_similar")


def test_case_only_options_are_distinct_and_spacing_only_ones_are_not(tmp_path):
    from diq.tasks.mcq import MCQError, normalize_item

    doc = normalize_item({"question": "Genotypes?", "options": {"A": "bb bb", "B": "Bb Bb", "C": "BB Bb"},
                          "answer_idx": "B"}, "x", "question", "options", "answer_idx")
    assert doc["options"] == ["bb bb", "Bb Bb", "BB Bb"] and doc["answer"] == 1
    with pytest.raises(MCQError, match=r"item 3: field 'options' repeats an option: A and C are both 'Bb  Bb'"):
        normalize_item({"question": "q?", "options": ["Bb  Bb", "bb", " Bb  Bb "], "answer": 0}, "item 3")


def test_the_huatuo_o1_fixture_has_the_real_files_shape():
    b = json.loads((ROOT / "diq" / "data" / "hub_fixtures" / "bundle" / "huatuo_o1_eval_data.json").read_text())
    assert sorted(b) == sorted(["MedMCQA_validation", "MedQA_USLME_test", "PubMedQA_test", "MMLU-Pro_Medical_test",
                                "GPQA_Medical_test"])
    assert len({len(v) for v in b.values()}) > 1  # uneven counts
    mmlu = b["MMLU-Pro_Medical_test"]
    assert {len(x["options"]) for x in mmlu} == {7, 8, 9, 10}
    assert any(len({o.lower() for o in x["options"].values()}) < len(x["options"]) for x in mmlu)  # case-only
    assert max(len(x["question"].split()) for x in b["MedMCQA_validation"]) < 13  # short questions
    first = b["PubMedQA_test"][0]["question"].split("\n")[0]
    assert all(x["question"].startswith(first) for x in b["PubMedQA_test"])  # a repeated instruction sentence


def _run(args, cwd, cache, timeout=600):
    env = {**os.environ, "DIQ_CACHE_DIR": str(cache), "WANDB_MODE": "disabled"}
    env.pop("DIQ_HUB_FIXTURES", None)
    return subprocess.run([sys.executable, "-m", "diq.run", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_huatuo_o1_file_runs_with_one_override_and_a_matcher_change_reuses_the_generations(tmp_path):
    fixture = ROOT / "diq" / "data" / "hub_fixtures" / "bundle" / "huatuo_o1_eval_data.json"
    base = ["experiment=paper_base", "debug=tiny", "selection=none", "eval.bundle=huatuo_o1", f"eval.path={fixture}",
            "eval.limit=6"]
    r = _run([*base, f"hydra.run.dir={tmp_path}/a"], tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a = json.loads((tmp_path / "a" / "record.json").read_text())
    assert sorted(a["eval"]["tasks"]) == ["bundle_gpqa_medical", "bundle_medmcqa", "bundle_medqa",
                                          "bundle_mmlu_pro_medical", "bundle_pubmedqa"]
    assert a["averages_n"] == {"AvgS": 3, "AvgC": 2, "AvgA": 5} and a["eval"]["matcher"] == "diq"
    r = _run([*base, "eval.matcher=huatuo", f"hydra.run.dir={tmp_path}/b"], tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "reusing the generations" in r.stdout + r.stderr
    b = json.loads((tmp_path / "b" / "record.json").read_text())
    assert b["eval"]["matcher"] == "huatuo" and b["seconds"]["eval"] < 30
    for name, t in b["eval"]["tasks"].items():
        h = t["huatuo"]
        assert t["value"] == max(h["first_match_acc"], h["last_match_acc"])
        assert t["strict"] == a["eval"]["tasks"][name]["value"]  # diq's strict score, from the same generations
        assert t["rules"].get("none", 0) == 0  # huatuo always answers
    items = json.loads(Path(b["per_item"], "bundle_medqa.json").read_text())
    assert {"pred", "first", "rule", "strict_pred", "resps"} <= set(items[0])

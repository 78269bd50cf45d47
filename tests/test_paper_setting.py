"""The paper's setting, offline: the evaluation bundle (nine benchmarks, 3 S + 6 C), a validation set per target
benchmark, decontamination that compares content — run through `experiment=paper_base debug=tiny` on hub-shaped
fixtures, and every lm-eval name we reference checked against the installed lm-eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from diq.errors import DiqError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "diq" / "data" / "hub_fixtures"


def _run(args, cwd, cache, timeout=600):
    env = {**os.environ, "DIQ_CACHE_DIR": str(cache), "WANDB_MODE": "disabled"}
    env.pop("DIQ_HUB_FIXTURES", None)
    return subprocess.run([sys.executable, "-m", "diq.run", *args, f"hydra.run.dir={cwd}/run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_fixtures_are_regenerated_byte_for_byte(tmp_path):
    from diq.tools.fixtures import write_all

    files = write_all(tmp_path)
    assert len(files) == 34
    for f in files:
        rel = f.relative_to(tmp_path)
        assert (FIXTURES / rel).read_bytes() == f.read_bytes(), f"{rel}: run python -m diq.tools.fixtures"


def test_fixture_schemas_match_the_hub_datasets():
    row = lambda p: json.loads((FIXTURES / p).read_text().splitlines()[0])  # noqa: E731
    assert set(row("FreedomIntelligence/medical-o1-reasoning-SFT/en/train.jsonl")) == {"Question", "Complex_CoT",
                                                                                     "Response"}
    assert set(row("GBaker/MedQA-USMLE-4-options-hf/_/test.jsonl")) == {"id", "sent1", "sent2", "ending0", "ending1",
                                                                        "ending2", "ending3", "label"}
    assert set(row("openlifescienceai/medmcqa/_/validation.jsonl")) >= {"id", "question", "opa", "opb", "opc", "opd",
                                                                        "cop"}
    r = row("TIGER-Lab/MMLU-Pro/_/test.jsonl")
    assert set(r) == {"question_id", "question", "options", "answer", "answer_index", "cot_content", "category", "src"}
    assert r["answer"] == "ABCDEFGHIJ"[r["answer_index"]]
    u = row("trl-lib/ultrafeedback_binarized/_/train.jsonl")  # conversations, the user turn first
    assert set(u) == {"chosen", "rejected", "score_chosen", "score_rejected"}
    assert [m["role"] for m in u["chosen"]] == ["user", "assistant"] == [m["role"] for m in u["rejected"]]
    b = json.loads((FIXTURES / "bundle" / "eval_data.json").read_text())
    assert list(b) == ["MedQA_USLME_test", "MedMCQA_validation", "PubMedQA_test", "MMLU-Pro_Medical_test",
                       "GPQA_Medical_test", "Medbullets_op4", "Medbullets_op5", "MedXpertQA", "NEJM", "Lancet"]
    assert all(set(x) >= {"question", "options", "answer_idx"} and x["answer_idx"] in x["options"]
               for items in b.values() for x in items)


def _eval_configs():
    return {p.stem: OmegaConf.load(p) for p in sorted((ROOT / "conf" / "eval").glob("*.yaml"))}


def test_every_lm_eval_name_exists_in_the_installed_lm_eval():
    """Task names, filter names and metric keys of every task our configs reference, read from lm-eval's own task
    YAMLs (no Hub): a renamed filter (mmlu_pro's `custom-extract`) fails here, not after training."""
    from lm_eval.tasks._yaml_loader import load_yaml

    from diq.stages.evaluate.harness import TASK_DIR, task_manager

    tm = task_manager([{"name": "mmlu_pro_health"}])
    checked = {}
    for name, cfg in _eval_configs().items():
        for spec in OmegaConf.to_container(cfg.tasks, resolve=False) or []:
            if spec.get("local"):
                continue
            entry = tm._entry(spec["name"])
            assert entry is not None and entry.yaml_path, f"conf/eval/{name}.yaml: {spec['name']} not in lm-eval"
            tcfg = load_yaml(entry.yaml_path, resolve_func=True)
            metric = tcfg["metric_list"][0]["metric"]
            filters = [f["name"] for f in tcfg.get("filter_list") or []]
            checked[spec["name"]] = f"{metric},{filters[0] if filters else 'none'}"
    assert checked["mmlu_pro_health"] == "exact_match,custom-extract"
    assert checked["medqa_4options_cot"] == "exact_match,extract" and checked["pubmedqa"] == "acc,none"
    assert len(checked) == 13 + 1  # medical_hub's 13 + pubmedqa_pqal_mc (pubmedqa_local)
    assert str(TASK_DIR) in str(tm._entry("pubmedqa_pqal_cot").yaml_path)


def test_paper_base_debug_tiny_runs_the_paper_path(tmp_path, tiny_path):
    r = _run(["experiment=paper_base", "debug=tiny", "selection=diq", "budget=p10"], tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rec = json.loads((tmp_path / "run" / "record.json").read_text())
    cats = {n: t["category"] for n, t in rec["eval"]["tasks"].items()}
    assert sorted(c for c in cats.values() if c) == ["C"] * 6 + ["S"] * 3 and cats["bundle_lancet"] is None
    assert rec["eval"]["tasks"]["bundle_mmlu_pro_medical"]["source"] == "MMLU-Pro_Medical_test"
    assert all(v is not None for v in rec["averages"].values())
    assert rec["averages_n"] == {"AvgS": 3, "AvgC": 6, "AvgA": 9}
    val = rec["scores"]["validation"]
    assert val["per_task"] == {"bundle_medqa": 4, "bundle_medmcqa": 4, "bundle_pubmedqa": 4,
                               "bundle_mmlu_pro_medical": 5, "bundle_gpqa_medical": 4, "bundle_medbullets_op4": 4,
                               "bundle_medbullets_op5": 4, "bundle_medxpertqa": 4, "bundle_nejm": 4}
    assert val["kinds"]["bundle_medqa"] == "hub" and val["kinds"]["bundle_nejm"] == "holdout"
    assert all(i.startswith("val:train-") for i in val["ids"]["bundle_medqa"])  # MedQA's train split
    # validation from train splits and held-out items survives decontaminate=drop (the paper setting's mode)
    assert rec["config"]["decontaminate"] == "drop" and rec["decontamination"]["validation"]["n_contaminated"] == 0
    # held-out items are never scored: 60 per source in the fixture, 20 held out
    assert rec["eval"]["tasks"]["bundle_nejm"]["n_available"] == 40
    assert rec["eval"]["tasks"]["bundle_medqa"]["n_available"] == 60
    for t in rec["eval"]["tasks"].values():
        assert t["n"] == 4 and abs(sum(t["rules"].values()) - 1) < 1e-9 and "majority_letter_baseline" in t
        assert sum(t["pred_letters"].values()) == 4 and sum(t["gold_letters"].values()) == 4  # one per item


def _bundle(path: Path, sources: dict[str, int], n: int = 8) -> Path:
    data = {}
    for src, k in sources.items():
        data[src] = [{"question": f"In a new bundle, source {src}, which number is item {i} paired with, per its own "
                                 f"key {i * 7}?",
                      "options": {"ABCDEFGHIJ"[j]: f"number {i * 10 + j}" for j in range(k)},
                      "answer_idx": "ABCDEFGHIJ"[i % k], "answer": f"number {i * 10 + i % k}"} for i in range(n)]
    path.write_text(json.dumps(data))
    return path


def test_a_new_bundle_file_is_evaluated_through_config_alone(tmp_path, tiny_path, cache_dir):
    from conftest import compose
    from diq.stages.evaluate.harness import evaluate

    bundle = _bundle(tmp_path / "eval_data.json", {"MedQA_USLME_test": 4, "MedMCQA_validation": 4,
                                                   "PubMedQA_test": 3, "MMLU-Pro_Medical_test": 10,
                                                   "GPQA_Medical_test": 4, "Medbullets_op4": 4, "Medbullets_op5": 5,
                                                   "MedXpertQA": 10, "NEJM": 4, "Lancet": 4})
    cfg = compose(["eval=medical_bundle", f"eval.path={bundle}", "eval.device=cpu", "eval.dtype=float32",
                   "eval.max_gen_toks=4", "eval.holdout=2", "eval.batch_size=8"]).eval
    res = evaluate(tiny_path, None, cfg)
    assert len(res["tasks"]) == 10 and res["averages_n"] == {"AvgS": 3, "AvgC": 6, "AvgA": 9}
    # sources with a train split are scored whole; the others lose their 2 held-out items
    assert res["tasks"]["bundle_medqa"]["n"] == 8 and res["tasks"]["bundle_gpqa_medical"]["n"] == 6
    # the matcher found no answer in 4 tokens of a random model: every item is decided by rule "none"
    assert res["tasks"]["bundle_medxpertqa"]["rules"] == {"none": 1.0}
    # huatuo's matcher always answers: the same generations are all decided, by its fallbacks
    cfg.matcher, cfg.prompt = "huatuo", "huatuo_strict"
    res2 = evaluate(tiny_path, None, cfg)
    assert res2["tasks"]["bundle_medxpertqa"]["rules"].get("none", 0) == 0
    assert res2["prompt"] == "huatuo_strict"


@pytest.mark.parametrize("mutate,msg", [
    (lambda d: d.pop("NEJM"), r"has no source\(s\) \['NEJM'\][\s\S]*eval.sources.<name>=null"),
    (lambda d: d["NEJM"][3].update(options={"A": "only one"}, answer_idx="A"), r"source 'NEJM' item 4: .*1 option"),
    (lambda d: d["Lancet"][0].update(answer_idx="F"), r"source 'Lancet' item 1: field 'answer_idx' = 'F'"),
    (lambda d: d["GPQA_Medical_test"][1].update(options="yes/no"), r"item 2: field 'options' must be a list"),
])
def test_bad_bundle_fails_before_compute(tmp_path, mutate, msg):
    from conftest import compose
    from diq.stages.evaluate.harness import preflight

    b = tmp_path / "b.json"
    data = json.loads((FIXTURES / "bundle" / "eval_data.json").read_text())
    mutate(data)
    b.write_text(json.dumps(data))
    cfg = compose(["eval=medical_bundle", f"eval.path={b}"]).eval
    with pytest.raises(DiqError, match=msg):
        preflight(cfg)


def test_copied_pool_is_flagged_item_by_item_and_dropped(tmp_path, tiny_path):
    """A pool that copies benchmark questions is flagged item by item (ids in the record), while the validation set
    drawn from train splits survives decontaminate=drop."""
    b = json.loads((FIXTURES / "bundle" / "eval_data.json").read_text())
    pool = [{"q": x["question"], "r": "Copied reasoning.", "a": x["answer"]} for x in b["MedQA_USLME_test"][:30]]
    demo = json.loads((ROOT / "diq" / "data" / "medical_o1_demo.json").read_text())[:70]
    pool += [{"q": d["Question"], "r": d["Complex_CoT"], "a": d["Response"]} for d in demo]
    p = tmp_path / "pool.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in pool))
    r = _run(["experiment=paper_base", "debug=tiny", "selection=influence", "budget=p10", "pool=local",
              f"pool.path={p}", "pool.fields.question=q", "pool.fields.reasoning=r", "pool.fields.response=a",
              "stop_after=select"], tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rec = json.loads((tmp_path / "run" / "record.json").read_text())
    d = rec["decontamination"]["pool"]
    assert d["n_contaminated"] == 30 and d["n_exact"] == 30 and len(d["flagged"]) == 30
    assert {x["task"] for x in d["flagged"]} == {"bundle_medqa"}
    assert rec["n_pool"] == 70 and rec["n_selected"] == 7
    assert rec["decontamination"]["validation"]["n_contaminated"] == 0


def test_scaffolding_is_not_contamination():
    """Two prompts that share only the CoT instruction and option letters are not contaminated."""
    from diq.tasks import decontam
    from diq.tasks.mcq import COT_INSTRUCTION

    docs = {"t": [{"id": f"t:{i}", "question": f"Question {i}: topic {i * 3}?\n\nOptions:\nA. x\nB. y\n\n{COT_INSTRUCTION}",
                   "templated": True} for i in range(6)]}
    sample = {"id": "s", "question": f"Another thing entirely?\n\nOptions:\nA. p\nB. q\n\n{COT_INSTRUCTION}",
              "reasoning": "", "response": "The answer is A."}
    assert not decontam.check([sample], docs, 13).ids
    docs["t"][0]["question"] = "A 45 year old man has crushing chest pain radiating to the left arm with sweating " \
                               "and nausea since this morning" + docs["t"][0]["question"]
    copied = {**sample, "id": "c", "reasoning": "A 45 year old man has crushing chest pain radiating to the left arm "
                                                "with sweating"}
    assert decontam.check([copied], docs, 13).ids == {"c"}


def test_eval_limit_is_a_seeded_random_sample(tiny_path, tmp_path):
    from diq.stages.evaluate.harness import evaluate

    rows = [{"question": f"Item {i} asks about organ {i}?", "options": ["kidney", "lung"], "answer": i % 2}
            for i in range(40)]
    bench = tmp_path / "b.jsonl"
    bench.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = OmegaConf.create({"batch_size": 4, "limit": 5, "device": "cpu", "seed": 7, "max_gen_toks": 4,
                            "tasks": [{"name": "b", "category": "S", "local": {"path": str(bench), "mode": "mc",
                                                                                "id_field": None}}]})
    res = evaluate(tiny_path, None, cfg, samples_dir=tmp_path / "s")
    items = json.loads((tmp_path / "s" / "b.json").read_text())
    ids = sorted(x["id"] for x in items)
    assert res["tasks"]["b"]["n"] == 5 and ids != [f"b:{i}" for i in range(1, 6)]
    res2 = evaluate(tiny_path, None, cfg, samples_dir=tmp_path / "s2")
    assert res2["tasks"]["b"]["value"] == res["tasks"]["b"]["value"]
    assert sorted(x["id"] for x in json.loads((tmp_path / "s2" / "b.json").read_text())) == ids
    assert res["limit_mode"] == "seeded random sample per task"
    # lm-eval's own results and samples files are kept beside ours (EvaluationTracker)
    assert list((tmp_path / "s" / "lm_eval").rglob("results_*.json")) and list((tmp_path / "s").rglob("samples_b_*"))


def test_medical_hub_runs_on_hub_fixtures(tiny_path, monkeypatch):
    """lm-eval's own hub tasks (MMLU-Pro health with its custom-extract filter, MedQA, MedMCQA, PubMedQA, MMLU) and
    diq's hub CoT tasks, evaluated end to end with their real metric keys on the hub-shaped fixtures."""
    from conftest import compose
    from diq.stages.evaluate.harness import evaluate

    monkeypatch.setenv("DIQ_HUB_FIXTURES", str(FIXTURES))
    cfg = compose(["eval=medical_hub", "eval.device=cpu", "eval.dtype=float32", "eval.limit=2",
                   "eval.max_gen_toks=4", "eval.batch_size=4"]).eval
    res = evaluate(tiny_path, None, cfg)
    assert len(res["tasks"]) == 13
    assert res["tasks"]["mmlu_pro_health"]["metric"] == "exact_match,custom-extract"
    assert res["tasks"]["medqa_4options"]["metric"] == "acc,none"
    assert all(t["n"] == 2 for t in res["tasks"].values())
    assert res["averages_n"] == {"AvgS": 3, "AvgC": 1, "AvgA": 4}


def test_local_benchmark_validation_follows_the_evaluation(tmp_path):
    """With eval=local_file the validation targets are the local benchmark (held-out items), not PubMedQA."""
    from conftest import compose
    from diq.tasks.validation import build_validation

    rows = [{"question": f"Local item {i} about gland {i * 11}?", "options": ["a", "b", "c", "d"], "answer": "ABCD"[i % 4],
             "uid": f"u{i}"} for i in range(30)]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = compose(["eval=local_file", f"eval.tasks.0.local.path={bench}", "eval.tasks.0.local.id_field=uid",
                   "eval.holdout=10", "scoring.validation.per_task=6"])
    recs, info = build_validation(cfg.scoring.validation, 0, cfg.eval)
    assert list(info["per_task"]) == ["local_bench"] and info["per_task"]["local_bench"] == 6
    from diq.stages.evaluate.harness import scored_docs, task_specs

    scored = {d["id"] for d in scored_docs(task_specs(cfg.eval)[0], 10, 0)}
    assert len(scored) == 20 and not {r["id"][4:] for r in recs} & scored
    assert yaml.safe_load((ROOT / "conf" / "scoring" / "default.yaml").read_text())["validation"]["sources"] == "auto"

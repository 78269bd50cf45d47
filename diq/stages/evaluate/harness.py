"""The one place evaluation happens: a thin wrapper over ``lm_eval.simple_evaluate``.

Tasks come from four places: the evaluation bundle (``eval.sources``: one generative task per source of
HuatuoGPT-o1's ``eval_data.json``), diq's packaged tasks (``diq/tasks``), lm-eval's built-in hub tasks
(``medqa_4options``, ``mmlu_pro_health``, ...) and local benchmark files (``local: {path: ..., mode: mc|cot}``).
``preflight`` checks every name against the installed lm-eval and reads every file before any compute is spent.
The batch size is an integer and is recorded, because lm-eval scores change with it. ``eval.limit`` is a seeded
random sample of each task's items (not the first N). Per task the record gets the fraction of items decided by
each answer-matching rule, the distribution of predicted letters and the majority-letter baseline.
"""

from __future__ import annotations

import collections
import logging
import random
import time
from pathlib import Path

from omegaconf import DictConfig

from diq.errors import DiqError
from diq.tasks.specs import (  # noqa: F401 - the task specs, re-exported for callers of the harness
    TASK_DIR,
    _c,
    build_task,
    preflight,
    primary_key,
    scored_docs,
    task_manager,
    task_specs,
)

log = logging.getLogger(__name__)
BIAS_WARN = 0.8  # warn when more than this share of predictions is one letter


def aggregate(per_task: dict[str, dict], specs: list[dict]) -> dict[str, float | None]:
    """AvgS / AvgC / AvgA (docs/method.md) over the tasks present: S = standard, C = challenging, A = all of both
    (the paper's (3 S + 6 C) / 9). Tasks with category null are reported but not averaged."""
    cats = {s["name"]: s.get("category") for s in specs}
    vals = {c: [per_task[t]["value"] for t in per_task if cats.get(t) == c] for c in ("S", "C")}
    both = vals["S"] + vals["C"]
    mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
    return {"AvgS": mean(vals["S"]), "AvgC": mean(vals["C"]), "AvgA": mean(both)}


def average_counts(per_task: dict[str, dict], specs: list[dict]) -> dict[str, int]:
    cats = {s["name"]: s.get("category") for s in specs}
    n = collections.Counter(cats.get(t) for t in per_task)
    return {"AvgS": n["S"], "AvgC": n["C"], "AvgA": n["S"] + n["C"]}


def generation_items(logged: list[dict], otype: str) -> list[dict]:
    """What an answer matcher needs of each logged lm-eval sample, kept with the generations so that matching is a
    separate step: ``kind`` ``mcq_gen`` (a generative task over diq's MCQ docs: reply, letters, options), ``mc``
    (log-likelihood multiple choice: the option log-likelihoods) or ``gen`` (another generative task: its own
    filtered answer)."""
    out = []
    for x in logged:
        doc = x.get("doc") or {}
        it = {"doc_id": x["doc_id"], "id": doc.get("id"), "target": x["target"], "resps": x["resps"],
              "filtered": x["filtered_resps"]}
        letters = doc.get("letters")
        if otype == "multiple_choice":
            lls = [r[0] if isinstance(r, (list, tuple)) else r for r in (x.get("filtered_resps") or x.get("resps") or [])]
            it.update(kind="mc", letters=letters,
                      lls=[float(v[0]) if isinstance(v, (list, tuple)) else float(v) for v in lls])
        elif letters and doc.get("options") is not None:
            resp = (x.get("resps") or [[""]])[0]
            it.update(kind="mcq_gen", letters=letters, options=doc["options"], options_raw=doc.get("options_raw"),
                      resp=resp[0] if isinstance(resp, list) else resp, gold=str(x.get("target")))
        else:
            filtered = x.get("filtered_resps")
            it.update(kind="gen", answer=filtered[0] if isinstance(filtered, list) and filtered else filtered)
        out.append(it)
    return out


def per_item_correct(items: list[dict], outcomes: list[dict]) -> dict:
    """Each scored item's correctness, compact enough for the record (paired statistics in ``diq.report`` read it):
    ``doc_ids`` (lm-eval's document index) and ``correct``, a string of 0/1 in the same order. For ``huatuo`` the
    item's correctness under the match (first or last) its task's score took."""
    order = sorted(range(len(items)), key=lambda i: items[i]["doc_id"])
    hit = []
    for o in outcomes:
        pred = o["first"] if o.get("taken") == "first" else o["pred"]
        hit.append("1" if str(pred).lower() == str(o["gold"]).lower() else "0")
    return {"doc_ids": [int(items[i]["doc_id"]) for i in order], "correct": "".join(hit[i] for i in order)}


def _outcome(it: dict) -> dict:
    """Prediction, gold label and rule of an ``mc`` or ``gen`` item (no answer matcher involved)."""
    if it["kind"] == "mc":
        lls, letters, tgt = it["lls"], it.get("letters"), it["target"]
        tgt = int(tgt) if isinstance(tgt, str) and tgt.strip().isdigit() else tgt  # lm-eval logs the index as text
        pred = max(range(len(lls)), key=lambda i: lls[i]) if lls else None
        lab = (lambda i: letters[i] if letters and i is not None and 0 <= i < len(letters) else str(i))  # noqa: E731
        return {"pred": lab(pred), "gold": lab(tgt) if isinstance(tgt, int) else str(tgt), "rule": "loglikelihood"}
    ans = it.get("answer")
    return {"pred": str(ans), "gold": str(it["target"]),
            "rule": "regex" if ans not in (None, "", "[invalid]") else "none"}


def wilson(p: float, n: int, z: float = 1.96) -> list[float] | None:
    """95 % Wilson score interval of an accuracy over n items (None for metrics outside [0, 1] or n = 0)."""
    if n <= 0 or not 0.0 <= p <= 1.0:
        return None
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return [max(0.0, c - h), min(1.0, c + h)]


def outcome_stats(outcomes: list[dict]) -> dict:
    n = len(outcomes) or 1
    rules = collections.Counter(o["rule"] for o in outcomes)
    preds = collections.Counter(o["pred"] for o in outcomes)
    golds = collections.Counter(o["gold"] for o in outcomes)
    answered = collections.Counter({k: v for k, v in preds.items() if k != "[invalid]"})
    top = answered.most_common(1)[0] if answered else (None, 0)
    return {"rules": {k: v / n for k, v in sorted(rules.items())}, "no_answer": preds.get("[invalid]", 0) / n,
            "pred_letters": dict(sorted(preds.items())), "gold_letters": dict(sorted(golds.items())),
            "majority_letter_baseline": (golds.most_common(1)[0][1] / n) if golds else None,
            "top_pred_share": top[1] / n, "letter_bias_warning": bool(outcomes) and top[1] / n > BIAS_WARN}


def _lm_eval_files(res: dict, out: Path) -> None:
    from lm_eval.loggers import EvaluationTracker

    try:
        tracker = EvaluationTracker(output_path=str(out))
        samples = res.get("samples") or {}
        tracker.save_results_aggregated(results={k: v for k, v in res.items() if k != "samples"}, samples=samples)
        for task_name in samples:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    except Exception as e:  # noqa: BLE001 - evidence files must never fail an evaluation that succeeded
        log.warning("could not write lm-eval's results files under %s: %s: %s", out, type(e).__name__, e)


def generate(model_path: str, adapter_path: str | None, cfg: DictConfig, samples_dir: Path | None = None,
             plan=None) -> dict:
    """Run lm-eval on the configured tasks (base model + LoRA adapter) and keep, per task, lm-eval's metrics and
    what an answer matcher needs of every item (``generation_items``). Independent of ``eval.matcher``: ``match``
    scores the result, so a change of matcher reuses the generations. ``samples_dir`` gets lm-eval's own files."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import get_task_dict

    specs = plan.specs if plan is not None else preflight(cfg)  # the run's plan: checked once, before any compute
    t0 = time.time()
    tm = task_manager(specs)
    lm = HFLM(pretrained=model_path, peft=adapter_path, device=cfg.device, batch_size=int(cfg.batch_size),
              dtype=cfg.get("dtype", "float32"), trust_remote_code=bool(cfg.get("trust_remote_code", False)),
              max_length=cfg.get("max_length"))
    per_task: dict[str, dict] = {}
    groups: dict[bool, list[dict]] = {}
    for s in specs:
        groups.setdefault(bool(s.get("chat_template", False)), []).append(s)
    for chat, group in groups.items():
        try:
            tasks = get_task_dict([build_task(s, cfg, tm, plan.docs.get(s["name"]) if plan is not None else None)
                                   for s in group], tm)
        except DiqError:
            raise
        except Exception as e:  # noqa: BLE001 - dataset loading inside lm-eval raises many kinds
            raise DiqError(f"lm-eval could not load tasks {[s['name'] for s in group]}: {type(e).__name__}: {e}\n"
                           f"  fix: for hub tasks check network/HF_HUB_OFFLINE (or hub_fixtures); for local tasks "
                           f"check the file") from e
        limit, samples = cfg.get("limit"), None
        if limit:
            samples = {}
            for name, task in tasks.items():
                n = len(task.eval_docs)
                samples[name] = sorted(random.Random(f"{cfg.seed}:{name}").sample(range(n), min(int(limit), n)))
        try:
            res = lm_eval.simple_evaluate(
                model=lm, tasks=list(tasks.values()), task_manager=tm, batch_size=int(cfg.batch_size), samples=samples,
                apply_chat_template=chat, gen_kwargs={"max_gen_toks": int(cfg.max_gen_toks)} if cfg.get("max_gen_toks") else None,
                log_samples=True, random_seed=int(cfg.seed), numpy_random_seed=int(cfg.seed),
                torch_random_seed=int(cfg.seed), fewshot_random_seed=int(cfg.seed), bootstrap_iters=0)
        except Exception as e:  # noqa: BLE001 - lm-eval raises many kinds; name the tasks and re-raise as ours
            raise DiqError(f"lm-eval failed on tasks {[s['name'] for s in group]}: {type(e).__name__}: {e}\n"
                           f"  fix: for hub tasks check network/HF_HUB_OFFLINE; for local tasks check the file") from e
        if samples_dir is not None:  # lm-eval's own results and per-item samples files, beside ours
            _lm_eval_files(res, samples_dir / "lm_eval")
        for s in group:
            name = s["name"]
            r = res["results"][name]
            task_cfg = tasks[name].config
            otype = task_cfg.output_type
            key = s.get("metric") or primary_key(task_cfg)
            if key not in r:
                raise DiqError(f"eval task {name!r}: metric {key!r} not in lm-eval results {sorted(r)}\n"
                               f"  fix: set eval.tasks[].metric to one of those")
            fname = key.split(",", 1)[1] if "," in key else "none"
            # lm-eval logs one sample per doc *and filter*: keep the filter the metric is read under
            logged = [x for x in res.get("samples", {}).get(name) or [] if x.get("filter", fname) == fname]
            per_task[name] = {
                "value": float(r[key]), "metric": key, "category": s.get("category"), "output_type": otype,
                "n": int(res["n-samples"][name]["effective"]), "n_available": len(tasks[name].eval_docs),
                "source": (s.get("bundle") or {}).get("source") or (s.get("local") or {}).get("path") or name,
                "all": {k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and "stderr" not in k},
                "items": generation_items(logged, otype),
            }
    return {"tasks": per_task, "specs": [{"name": s["name"], "category": s.get("category")} for s in specs],
            "batch_size": int(cfg.batch_size), "limit": cfg.get("limit"),
            "limit_mode": "seeded random sample per task" if cfg.get("limit") else None,
            "prompt": cfg.get("prompt", "diq"), "sampling": cfg.get("sampling", "greedy"),
            "max_gen_toks": cfg.get("max_gen_toks"), "seconds": time.time() - t0}


def match(gen: dict, matcher: str = "diq", samples_dir: Path | None = None) -> dict:
    """Score stored generations with an answer matcher (``eval.matcher``): seconds, no model. Generative MCQ tasks
    get their value from the matcher (``diq.tasks.answers.score_items``: for ``huatuo``, HuatuoGPT-o1's max of
    first- and last-match accuracy, both kept), with diq's strict score beside it; log-likelihood and other lm-eval
    tasks keep lm-eval's metric. ``samples_dir`` gets one per-item file per task (reply, prediction, rule)."""
    from diq.tasks.answers import score_items

    t0 = time.time()
    per_task: dict[str, dict] = {}
    for name, t in gen["tasks"].items():
        items = t["items"]
        task = {k: v for k, v in t.items() if k != "items"}
        mcq_items = [it for it in items if it["kind"] == "mcq_gen"]
        if mcq_items and len(mcq_items) == len(items):
            summary, outs = score_items(mcq_items, matcher)
            task.update(value=summary["value"], strict=summary["strict"], n_empty=summary["n_empty"],
                        matched_by=matcher, **({"huatuo": summary["huatuo"]} if "huatuo" in summary else {}))
        else:
            outs = [_outcome(it) for it in items]
        stats = outcome_stats(outs)
        if stats["letter_bias_warning"]:
            top = max((k for k in stats["pred_letters"] if k != "[invalid]"), key=stats["pred_letters"].get)
            log.warning("eval task %s: %.0f%% of predictions are %r (majority-letter baseline %.2f)", name,
                        100 * stats["top_pred_share"], top, stats["majority_letter_baseline"] or 0)
        per_task[name] = {**task, "ci95": wilson(float(task["value"]), int(task["n"])), **stats,
                          "per_item_correct": per_item_correct(items, outs)}
        if samples_dir is not None and items:
            from diq.artifacts import write_json

            keep = ("doc_id", "id", "target", "resps", "filtered")
            write_json(samples_dir / f"{name}.json", [{**{k: it[k] for k in keep}, **o} for it, o in zip(items, outs)])
    specs = gen["specs"]
    return {"tasks": per_task, "averages": aggregate(per_task, specs), "averages_n": average_counts(per_task, specs),
            **{k: gen[k] for k in ("batch_size", "limit", "limit_mode", "prompt", "sampling", "max_gen_toks")},
            "matcher": matcher, "seconds": gen["seconds"], "seconds_match": time.time() - t0}


def evaluate(model_path: str, adapter_path: str | None, cfg: DictConfig, samples_dir: Path | None = None) -> dict:
    """Generate and match in one call: per-task metrics, averages and the per-item files under ``samples_dir``."""
    gen = generate(model_path, adapter_path, cfg, samples_dir)
    return match(gen, cfg.get("matcher", "diq"), samples_dir)

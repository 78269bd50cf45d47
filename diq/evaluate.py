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

from .errors import DiqError
from .tasks.specs import (  # noqa: F401 - the task specs, re-exported for callers of diq.evaluate
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
    """AvgS / AvgC / AvgA (METHOD.md) over the tasks present: S = standard, C = challenging, A = all of both
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


def _item_outcome(x: dict, otype: str, matcher: str) -> dict:
    """Prediction, gold label and the answer-matching rule of one logged lm-eval sample."""
    from .tasks import mcq

    doc = x.get("doc") or {}
    letters = doc.get("letters")
    if otype == "multiple_choice":
        lls = [r[0] if isinstance(r, (list, tuple)) else r for r in (x.get("filtered_resps") or x.get("resps") or [])]
        lls = [float(v[0]) if isinstance(v, (list, tuple)) else float(v) for v in lls]
        pred = max(range(len(lls)), key=lambda i: lls[i]) if lls else None
        tgt = x.get("target")
        lab = (lambda i: letters[i] if letters and i is not None and 0 <= i < len(letters) else str(i))  # noqa: E731
        gold = lab(tgt) if isinstance(tgt, int) else str(tgt)
        return {"pred": lab(pred), "gold": gold, "rule": "loglikelihood"}
    resp = (x.get("resps") or [[""]])[0]
    resp = resp[0] if isinstance(resp, list) else resp
    filtered = x.get("filtered_resps")
    filtered = filtered[0] if isinstance(filtered, list) and filtered else filtered
    if letters and doc.get("options") is not None:
        pred, rule = mcq.MATCHERS[matcher](resp, letters, doc["options"])
    else:
        pred, rule = str(filtered), ("regex" if filtered not in (None, "", "[invalid]") else "none")
    return {"pred": pred, "gold": str(x.get("target")), "rule": rule}


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


def evaluate(model_path: str, adapter_path: str | None, cfg: DictConfig, samples_dir: Path | None = None) -> dict:
    """Evaluate base model (+ LoRA adapter) on the configured tasks. Returns per-task metrics and averages."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import get_task_dict

    specs = preflight(cfg)
    t0 = time.time()
    tm = task_manager(specs)
    lm = HFLM(pretrained=model_path, peft=adapter_path, device=cfg.device, batch_size=int(cfg.batch_size),
              dtype=cfg.get("dtype", "float32"), trust_remote_code=bool(cfg.get("trust_remote_code", False)),
              max_length=cfg.get("max_length"))
    matcher = cfg.get("matcher", "diq")
    per_task: dict[str, dict] = {}
    groups: dict[bool, list[dict]] = {}
    for s in specs:
        groups.setdefault(bool(s.get("chat_template", False)), []).append(s)
    for chat, group in groups.items():
        try:
            tasks = get_task_dict([build_task(s, cfg, tm) for s in group], tm)
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
            outcomes = [_item_outcome(x, otype, matcher) for x in logged]
            stats = outcome_stats(outcomes)
            if stats["letter_bias_warning"]:
                top = max((k for k in stats["pred_letters"] if k != "[invalid]"), key=stats["pred_letters"].get)
                log.warning("eval task %s: %.0f%% of predictions are %r (majority-letter baseline %.2f)", name,
                            100 * stats["top_pred_share"], top, stats["majority_letter_baseline"] or 0)
            n_eff = int(res["n-samples"][name]["effective"])
            per_task[name] = {
                "value": float(r[key]), "metric": key, "ci95": wilson(float(r[key]), n_eff), "category": s.get("category"), "output_type": otype,
                "n": int(res["n-samples"][name]["effective"]), "n_available": len(tasks[name].eval_docs),
                "source": (s.get("bundle") or {}).get("source") or (s.get("local") or {}).get("path") or name,
                "all": {k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and "stderr" not in k},
                **stats,
            }
            if samples_dir is not None and logged:
                from .artifacts import write_json

                write_json(samples_dir / f"{name}.json", [
                    {"doc_id": x["doc_id"], "id": (x.get("doc") or {}).get("id"), "target": x["target"],
                     "resps": x["resps"], "filtered": x["filtered_resps"], **o}
                    for x, o in zip(logged, outcomes)])
    return {"tasks": per_task, "averages": aggregate(per_task, specs),
            "averages_n": average_counts(per_task, specs), "batch_size": int(cfg.batch_size),
            "limit": cfg.get("limit"), "limit_mode": "seeded random sample per task" if cfg.get("limit") else None,
            "prompt": cfg.get("prompt", "diq"), "matcher": matcher, "max_gen_toks": cfg.get("max_gen_toks"),
            "seconds": time.time() - t0}

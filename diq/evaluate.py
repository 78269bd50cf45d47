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
import difflib
import functools
import logging
import random
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import DiqError

TASK_DIR = Path(__file__).parent / "tasks"
PACKAGED = {p.stem for p in TASK_DIR.glob("*.yaml")}
log = logging.getLogger(__name__)
BIAS_WARN = 0.8  # warn when more than this share of predictions is one letter


def _c(x):
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x


# ----------------------------------------------------------------------------------------------- task specs
def bundle_specs(cfg) -> list[dict]:
    """One task spec per configured source of the evaluation bundle (``eval.sources``; null drops a source)."""
    from .hub import fixtures_dir
    from .tasks import bundle

    sources = _c(cfg.get("sources")) or {}
    if not sources:
        return []
    path = cfg.get("path")
    if not path and not (cfg.get("hub") or {}).get("repo_id") and fixtures_dir() is not None:
        path = str(fixtures_dir() / "bundle" / "eval_data.json")  # the fixture mirror of the bundle
    p = str(bundle.resolve(path, _c(cfg.get("hub"))))
    specs = []
    for src, s in sources.items():
        if s is None:
            continue
        holdout = int(s.get("holdout", cfg.get("holdout", 0)) or 0) if not s.get("validation") else 0
        specs.append({"name": s["task"], "category": s.get("category"), "chat_template": True,
                      "bundle": {"path": p, "source": src, "holdout": holdout,
                                 "holdout_seed": int(cfg.get("holdout_seed", 0))},
                      "validation": s.get("validation") or {"kind": "holdout"}})
    return specs


def task_specs(cfg) -> list[dict]:
    specs = bundle_specs(cfg) + list(_c(cfg.get("tasks")) or [])
    if not specs:
        raise DiqError("eval.tasks is empty\n  fix: choose an eval config (eval=pubmedqa_local, eval=medical_bundle) "
                       "or list tasks")
    seen = set()
    for i, s in enumerate(specs):
        if not isinstance(s, dict) or not s.get("name"):
            raise DiqError(f"eval.tasks[{i}] = {s!r} has no 'name'\n  fix: give every task a name")
        if s["name"] in seen:
            raise DiqError(f"eval task {s['name']!r} is listed twice\n  fix: remove one, or rename it")
        seen.add(s["name"])
        if s.get("category") not in ("S", "C", None):
            raise DiqError(f"eval task {s['name']!r}: category={s.get('category')!r}; choose S, C or null")
        if s.get("local"):
            loc = s["local"]
            if not loc.get("path") or loc.get("path") == "???":
                raise DiqError(f"eval task {s['name']!r}: local.path is not set\n  fix: pass "
                               f"eval.tasks.{i}.local.path=/path/to/bench.jsonl")
            if loc.get("mode", "cot") not in ("mc", "cot"):
                raise DiqError(f"eval task {s['name']!r}: local.mode={loc.get('mode')!r}; choose mc or cot")
    return specs


def _local_docs(spec: dict) -> list[dict]:
    from .tasks import mcq

    loc = {k: v for k, v in spec["local"].items() if k in ("question_field", "options_field", "answer_field",
                                                            "id_field", "context_field")}
    return mcq.read_local_mcq(spec["local"]["path"], **loc)


def scored_docs(spec: dict, holdout: int = 0, holdout_seed: int = 0) -> list[dict] | None:
    """The items of a bundle or local task that are scored (after any hold-out); None for lm-eval tasks."""
    from .tasks import bundle

    if spec.get("bundle"):
        b = spec["bundle"]
        return bundle.source_docs(b["path"], b["source"], b["holdout"], b["holdout_seed"])
    if spec.get("local"):
        docs = _local_docs(spec)
        k = int(spec["local"].get("holdout", holdout) or 0) if (spec.get("validation") or {}).get("kind") == "holdout" \
            else 0
        return bundle.split_holdout(docs, k, holdout_seed)[0]
    return None


def _gen_task(name: str, docs_fn, prompt: str, matcher: str, max_gen_toks: int) -> dict:
    from .tasks import mcq

    return {"task": name, "custom_dataset": docs_fn, "test_split": "test", "output_type": "generate_until",
            "doc_to_text": mcq.PROMPTS[prompt], "doc_to_target": mcq.target_letter,
            "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_gen_toks},
            "filter_list": [{"name": "extract", "filter": [
                {"function": "custom", "filter_fn": functools.partial(mcq.extract_filter, matcher=matcher)},
                {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0}}


def _docs_dataset(docs: list[dict], **_kw):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def build_task(spec: dict, cfg, tm) -> dict | str:
    """The lm-eval task (a config dict, or a registered name) for one spec."""
    from lm_eval.tasks._yaml_loader import load_yaml

    from .hub import fixtures_dir, redirect_task
    from .tasks import mcq

    prompt, matcher = cfg.get("prompt", "diq"), cfg.get("matcher", "diq")
    max_gen = int(cfg.get("max_gen_toks") or 512)
    if spec.get("bundle") or (spec.get("local") and spec["local"].get("mode", "cot") == "cot"):
        docs = scored_docs(spec, int(cfg.get("holdout", 0) or 0), int(cfg.get("holdout_seed", 0)))
        return _gen_task(spec["name"], functools.partial(_docs_dataset, docs), prompt, matcher, max_gen)
    if spec.get("local"):
        docs = scored_docs(spec, int(cfg.get("holdout", 0) or 0), int(cfg.get("holdout_seed", 0)))
        return {"task": spec["name"], "custom_dataset": functools.partial(_docs_dataset, docs), "test_split": "test",
                "output_type": "multiple_choice", "doc_to_text": mcq.mc_text, "doc_to_choice": mcq.mc_choices,
                "doc_to_target": mcq.target_index,
                "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
                "metadata": {"version": 1.0}}
    if fixtures_dir() is not None:  # hub-shaped fixtures: the task's own config, its dataset read from the fixture
        entry = tm._entry(spec["name"])
        if entry is not None and entry.yaml_path:
            return redirect_task(load_yaml(entry.yaml_path, resolve_func=True))
    return spec["name"]


def primary_key(task_cfg) -> str:
    """``metric,filter`` of the task's first metric under its first filter, as lm-eval names its results."""
    metric = (task_cfg.metric_list or [{}])[0].get("metric", "acc")
    filters = getattr(task_cfg, "filter_list", None) or []
    fname = filters[0]["name"] if filters and isinstance(filters[0], dict) else "none"
    return f"{metric},{fname}"


def check_tasks(specs: list[dict], task_manager) -> None:
    known = None
    for s in specs:
        if s.get("local") or s.get("bundle") or s["name"] in PACKAGED:
            continue
        known = known if known is not None else set(task_manager.all_tasks)
        if s["name"] not in known:
            close = difflib.get_close_matches(s["name"], sorted(known), n=5)
            raise DiqError(f"eval task {s['name']!r} is not a diq or lm-eval task"
                           f"{'; did you mean ' + ', '.join(close) + '?' if close else ''}\n"
                           f"  fix: correct eval.tasks[].name, or declare a local file task (local: {{path: ..., mode: cot}})")


def task_manager(specs: list[dict]):
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    needs_builtin = any(not s.get("local") and not s.get("bundle") and s["name"] not in PACKAGED for s in specs)
    return TaskManager(include_path=str(TASK_DIR), include_defaults=needs_builtin)


def preflight(cfg) -> list[dict]:
    """Everything about the evaluation that can fail, checked before scoring and training: task names against the
    installed lm-eval, every local and bundle file read and validated item by item, limit and batch size."""
    from .tasks.mcq import MCQError

    limit = cfg.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DiqError(f"eval.limit={limit!r}: use a positive integer (items sampled per task) or null for all")
    bs = cfg.get("batch_size")
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise DiqError(f"eval.batch_size={bs!r}: use a positive integer (scores depend on it, it is recorded)")
    if cfg.get("prompt", "diq") not in ("diq", "huatuo", "huatuo_strict"):
        raise DiqError(f"eval.prompt={cfg.get('prompt')!r}; choose diq, huatuo or huatuo_strict")
    if cfg.get("matcher", "diq") not in ("diq", "huatuo"):
        raise DiqError(f"eval.matcher={cfg.get('matcher')!r}; choose diq or huatuo")
    try:
        specs = task_specs(cfg)
        sources = _c(cfg.get("sources")) or {}
        if sources:
            from .tasks import bundle

            have = bundle.read(specs[0]["bundle"]["path"]) if specs and specs[0].get("bundle") else {}
            missing = [s for s, v in sources.items() if v is not None and s not in have]
            if missing:
                raise DiqError(f"evaluation bundle {specs[0]['bundle']['path']} has no source(s) {missing} "
                               f"(it has {sorted(have)})\n  fix: use a bundle with them, or drop a source with "
                               f"eval.sources.<name>=null (the averages then say how many benchmarks they cover)")
        for s in specs:
            docs = scored_docs(s, int(cfg.get("holdout", 0) or 0), int(cfg.get("holdout_seed", 0)))
            if docs is not None and not docs:
                raise DiqError(f"eval task {s['name']!r}: no items left to score after holding out validation items"
                               f"\n  fix: lower eval.holdout or use a larger benchmark")
    except MCQError as e:
        raise DiqError(str(e)) from None
    check_tasks(specs, task_manager(specs))
    return specs


# ----------------------------------------------------------------------------------------------- results
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

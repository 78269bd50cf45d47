"""Evaluation task specs: which benchmarks a run evaluates (``eval.tasks`` or the bundle), their items (scored
docs, hold-outs), the lm-eval task configs built from them, and the preflight that checks every item before any
compute. ``diq/stages/evaluate/harness.py`` runs them."""

from __future__ import annotations

import difflib
import functools
import logging
from pathlib import Path

from omegaconf import OmegaConf

from diq.errors import DiqError

TASK_DIR = Path(__file__).parent
# local benchmark files: cot (generate, match the answer), mc (log-likelihood of the option letters after the listed
# options), cloze (log-likelihood of each option's text as the answer, options not listed: ARC/MMLU-cloze style)
LOCAL_MODES = ("cot", "mc", "cloze")
PACKAGED = {p.stem for p in TASK_DIR.glob("*.yaml")}
log = logging.getLogger(__name__)


def _c(x):
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x


# ----------------------------------------------------------------------------------------------- task specs
def bundle_sources(cfg) -> dict[str, dict]:
    """The sources evaluated: those of ``eval.bundle`` (``eval.bundles.<name>.sources``) that ``eval.sources``
    defines and does not set to null, plus any source ``eval.sources`` defines that no bundle lists (a user's own)."""
    sources = _c(cfg.get("sources")) or {}
    bundles = _c(cfg.get("bundles")) or {}
    if not sources:
        return {}
    if not bundles:  # an eval config without named bundles: every defined source
        return {k: v for k, v in sources.items() if v is not None}
    name = cfg.get("bundle")
    if name not in bundles:
        raise DiqError(f"eval.bundle={name!r} is not a known bundle\n  fix: choose one of {sorted(bundles)} "
                       f"(eval.bundles.<name>.sources lists each one's sources)")
    listed = set(bundles[name].get("sources") or [])
    known = {x for b in bundles.values() for x in (b.get("sources") or [])}
    return {k: v for k, v in sources.items() if v is not None and (k in listed or k not in known)}


def bundle_file(cfg) -> str:
    from diq.engine.hub import fixtures_dir
    from diq.tasks import bundle

    path = cfg.get("path")
    if not path and not (cfg.get("hub") or {}).get("repo_id") and fixtures_dir() is not None:
        # the fixture mirror of the chosen bundle
        fixture = ((_c(cfg.get("bundles")) or {}).get(cfg.get("bundle")) or {}).get("fixture") or "bundle/eval_data.json"
        path = str(fixtures_dir() / fixture)
    return str(bundle.resolve(path, _c(cfg.get("hub"))))


def bundle_specs(cfg) -> list[dict]:
    """One task spec per evaluated source of the evaluation bundle (``bundle_sources``)."""
    sources = bundle_sources(cfg)
    if not sources:
        return []
    p = bundle_file(cfg)
    specs = []
    for src, s in sources.items():
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
            if loc.get("mode", "cot") not in LOCAL_MODES:
                raise DiqError(f"eval task {s['name']!r}: local.mode={loc.get('mode')!r}; choose "
                               f"{', '.join(LOCAL_MODES)}")
    return specs


def _local_docs(spec: dict) -> list[dict]:
    from diq.tasks import mcq

    loc = {k: v for k, v in spec["local"].items() if k in ("question_field", "options_field", "answer_field",
                                                            "id_field", "context_field", "prefix_field")}
    return mcq.read_local_mcq(spec["local"]["path"], **loc)


def scored_docs(spec: dict, holdout: int = 0, holdout_seed: int = 0) -> list[dict] | None:
    """The items of a bundle or local task that are scored (after any hold-out); None for lm-eval tasks."""
    from diq.tasks import bundle

    if spec.get("bundle"):
        b = spec["bundle"]
        return bundle.source_docs(b["path"], b["source"], b["holdout"], b["holdout_seed"])
    if spec.get("local"):
        docs = _local_docs(spec)
        k = int(spec["local"].get("holdout", holdout) or 0) if (spec.get("validation") or {}).get("kind") == "holdout" \
            else 0
        return bundle.split_holdout(docs, k, holdout_seed)[0]
    return None


# eval.sampling: greedy (diq's default) | huatuo (HuatuoGPT-o1's eval.py: temperature 0.5, top_p 0.9; seeded by eval.seed)
SAMPLING = {"greedy": {"do_sample": False},
            "huatuo": {"do_sample": True, "temperature": 0.5, "top_p": 0.9}}


def _gen_task(name: str, docs_fn, prompt: str, max_gen_toks: int, sampling: str = "greedy") -> dict:
    """A generative MCQ task. Its filter is diq's matcher, but the task's score comes from ``diq.stages.evaluate.harness.match``,
    which re-scores the stored replies with ``eval.matcher``: generation does not depend on the matcher."""
    from diq.tasks import mcq

    return {"task": name, "custom_dataset": docs_fn, "test_split": "test", "output_type": "generate_until",
            "doc_to_text": mcq.PROMPTS[prompt], "doc_to_target": mcq.target_letter,
            "generation_kwargs": {"until": [], **SAMPLING[sampling], "max_gen_toks": max_gen_toks},
            "filter_list": [{"name": "extract", "filter": [
                {"function": "custom", "filter_fn": functools.partial(mcq.extract_filter, matcher="diq")},
                {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0}}


def _docs_dataset(docs: list[dict], **_kw):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def build_task(spec: dict, cfg, tm, docs: list[dict] | None = None) -> dict | str:
    """The lm-eval task (a config dict, or a registered name) for one spec; ``docs``: its scored documents when the
    run's plan has them (read once), else read here."""
    from lm_eval.tasks._yaml_loader import load_yaml

    from diq.engine.hub import fixtures_dir, redirect_task
    from diq.tasks import mcq

    prompt, sampling = cfg.get("prompt", "diq"), cfg.get("sampling", "greedy")
    max_gen = int(cfg.get("max_gen_toks") or 512)
    if docs is None and (spec.get("bundle") or spec.get("local")):
        docs = scored_docs(spec, int(cfg.get("holdout", 0) or 0), int(cfg.get("holdout_seed", 0)))
    if spec.get("bundle") or (spec.get("local") and spec["local"].get("mode", "cot") == "cot"):
        return _gen_task(spec["name"], functools.partial(_docs_dataset, docs), prompt, max_gen, sampling)
    if spec.get("local"):
        cloze = spec["local"].get("mode") == "cloze"
        prefix = spec["local"].get("answer_prefix") if cloze else None
        extra = {}
        if prefix:  # cloze in the model's own reply: each option is scored after this start of the reply
            docs = [{**d, "gen_prefix": prefix.format(prefix=d.get("prefix", ""))} for d in docs]
            extra = {"gen_prefix": "gen_prefix"}
        return {"task": spec["name"], "custom_dataset": functools.partial(_docs_dataset, docs), "test_split": "test",
                "output_type": "multiple_choice", **extra,
                "doc_to_text": (mcq.question_text if prefix else mcq.cloze_text) if cloze else mcq.mc_text,
                "doc_to_choice": mcq.option_texts if cloze else mcq.mc_choices,
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
    return preflight_plan(cfg)[0]


def preflight_plan(cfg) -> tuple[list[dict], dict[str, list[dict] | None]]:
    """``preflight``, returning also each task's scored documents (None for lm-eval's own tasks): what
    ``diq.tasks.plan.EvalPlan`` keeps so that no later stage reads or checks a benchmark file again."""
    from diq.tasks.mcq import MCQError

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
    if cfg.get("sampling", "greedy") not in SAMPLING:
        raise DiqError(f"eval.sampling={cfg.get('sampling')!r}; choose {' or '.join(SAMPLING)} (greedy is diq's default; "
                       f"huatuo = HuatuoGPT-o1's temperature 0.5, top_p 0.9)")
    try:
        specs = task_specs(cfg)
        sources = bundle_sources(cfg)
        if sources:
            from diq.tasks import bundle

            path = specs[0]["bundle"]["path"]
            have = bundle.read(path)
            missing = [s for s in sources if s not in have]
            if missing:
                raise DiqError(f"evaluation bundle {path} has no source(s) {missing} (it has {sorted(have)})\n"
                               f"  fix: choose the bundle the file is (eval.bundle=huatuo_o1 for HuatuoGPT-o1's file, "
                               f"m1 for m1's), or drop a source with eval.sources.<name>=null (the averages then say "
                               f"how many benchmarks they cover)")
            for src in sources:
                if not have[src]:
                    raise DiqError(f"evaluation bundle {path}: source {src!r} has no items\n  fix: add its items, "
                                   f"or drop it with eval.sources.{src}=null")
            unmapped = sorted(set(have) - set(sources))
            if unmapped:
                log.warning("evaluation bundle %s: source(s) %s are in the file but not evaluated (eval.bundle=%s); "
                            "to evaluate one, choose a bundle that lists it or define it: "
                            "+eval.sources.<name>='{task: <name>, category: C}'", path, unmapped, cfg.get("bundle"))
        scored = {}
        for s in specs:
            docs = scored_docs(s, int(cfg.get("holdout", 0) or 0), int(cfg.get("holdout_seed", 0)))
            if docs is not None and not docs:
                raise DiqError(f"eval task {s['name']!r}: no items left to score after holding out validation items"
                               f"\n  fix: lower eval.holdout or use a larger benchmark")
            scored[s["name"]] = docs
    except MCQError as e:
        raise DiqError(str(e)) from None
    check_tasks(specs, task_manager(specs))
    return specs, scored


# ----------------------------------------------------------------------------------------------- results

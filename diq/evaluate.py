"""The one place evaluation happens: a thin wrapper over ``lm_eval.simple_evaluate``.

Tasks come from three places: diq's packaged tasks (``diq/tasks``: bundled PubMedQA PQA-L test split as
log-likelihood and chain-of-thought tasks, CoT variants of MedQA/MedMCQA), lm-eval's built-in hub tasks
(``medqa_4options``, ``medmcqa``, ``pubmedqa``, MMLU medical subjects, ...), and local benchmark files declared
in config (``local: {path: ..., mode: mc|cot}``). The batch size is an integer and is recorded, because
lm-eval scores change with it.
"""

from __future__ import annotations

import difflib
import functools
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import DiqError

TASK_DIR = Path(__file__).parent / "tasks"
PACKAGED = {p.stem for p in TASK_DIR.glob("*.yaml")}


def _primary_key(output_type: str) -> str:
    return "exact_match,extract" if output_type == "generate_until" else "acc,none"


def _local_task(spec: dict) -> dict:
    from .tasks import mcq

    loc = dict(spec["local"])
    mode = loc.pop("mode", "cot")
    path = loc.pop("path")
    if not Path(path).exists():
        raise DiqError(f"eval task {spec['name']!r}: benchmark file not found: {path}\n"
                       f"  fix: set eval.tasks[].local.path to an existing .json/.jsonl file")
    try:  # read once now so a bad file fails before any model is loaded
        mcq.read_local_mcq(path, **loc)
    except (KeyError, ValueError, TypeError) as e:
        raise DiqError(f"eval task {spec['name']!r}: {e}\n  fix: set local.question_field / options_field / "
                       f"answer_field to the file's columns") from None
    task: dict[str, Any] = {
        "task": spec["name"],
        "custom_dataset": functools.partial(mcq.load_local_mcq, path, **loc),
        "test_split": "test",
        "doc_to_target": mcq.target_letter if mode == "cot" else mcq.target_index,
        "metadata": {"version": 1.0},
    }
    if mode == "mc":
        task.update(output_type="multiple_choice", doc_to_text=mcq.mc_text, doc_to_choice=mcq.mc_choices,
                    metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True}])
    elif mode == "cot":
        task.update(output_type="generate_until", doc_to_text=mcq.cot_text,
                    generation_kwargs={"until": [], "do_sample": False, "max_gen_toks": 512},
                    filter_list=[{"name": "extract", "filter": [{"function": "custom", "filter_fn": mcq.extract_filter},
                                                                {"function": "take_first"}]}],
                    metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}])
    else:
        raise DiqError(f"eval task {spec['name']!r}: local.mode={mode!r}; choose mc or cot")
    return task


def task_specs(cfg: DictConfig) -> list[dict]:
    specs = OmegaConf.to_container(cfg.tasks, resolve=True)
    if not specs:
        raise DiqError("eval.tasks is empty\n  fix: choose an eval config (eval=pubmedqa_local) or list tasks")
    for s in specs:
        if "name" not in s:
            raise DiqError(f"eval.tasks entry {s} has no 'name'")
    return specs


def check_tasks(specs: list[dict], task_manager) -> None:
    known = None
    for s in specs:
        if s.get("local") or s["name"] in PACKAGED:
            continue
        known = known if known is not None else set(task_manager.all_tasks)
        if s["name"] not in known:
            close = difflib.get_close_matches(s["name"], sorted(known), n=5)
            raise DiqError(f"eval task {s['name']!r} is not a diq or lm-eval task"
                           f"{'; did you mean ' + ', '.join(close) + '?' if close else ''}\n"
                           f"  fix: correct eval.tasks[].name, or declare a local file task (local: {{path: ..., mode: cot}})")


def aggregate(per_task: dict[str, dict], specs: list[dict]) -> dict[str, float | None]:
    """AvgS / AvgC / AvgA (METHOD.md) over the tasks present: S = standard, C = challenging, A = both.
    Tasks with category null are reported but not averaged."""
    cats = {s["name"]: s.get("category") for s in specs}
    vals = {c: [per_task[t]["value"] for t in per_task if cats.get(t) == c] for c in ("S", "C")}
    both = vals["S"] + vals["C"]
    mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
    return {"AvgS": mean(vals["S"]), "AvgC": mean(vals["C"]), "AvgA": mean(both)}


def evaluate(model_path: str, adapter_path: str | None, cfg: DictConfig, samples_dir: Path | None = None) -> dict:
    """Evaluate base model (+ LoRA adapter) on the configured tasks. Returns per-task metrics and averages."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    specs = task_specs(cfg)
    needs_builtin = any(not s.get("local") and s["name"] not in PACKAGED for s in specs)
    t0 = time.time()
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    tm = TaskManager(include_path=str(TASK_DIR), include_defaults=needs_builtin, verbosity="ERROR")
    check_tasks(specs, tm)
    if not isinstance(cfg.batch_size, int):
        raise DiqError(f"eval.batch_size={cfg.batch_size!r}: use an integer (scores depend on it, it is recorded)")
    lm = HFLM(pretrained=model_path, peft=adapter_path, device=cfg.device, batch_size=int(cfg.batch_size),
              dtype=cfg.get("dtype", "float32"), trust_remote_code=bool(cfg.get("trust_remote_code", False)),
              max_length=cfg.get("max_length"))
    per_task: dict[str, dict] = {}
    groups: dict[bool, list[dict]] = {}
    for s in specs:
        groups.setdefault(bool(s.get("chat_template", False)), []).append(s)
    for chat, group in groups.items():
        tasks = [_local_task(s) if s.get("local") else s["name"] for s in group]
        try:
            res = lm_eval.simple_evaluate(
                model=lm, tasks=tasks, task_manager=tm, batch_size=int(cfg.batch_size), limit=cfg.get("limit"),
                apply_chat_template=chat, gen_kwargs={"max_gen_toks": int(cfg.max_gen_toks)} if cfg.get("max_gen_toks") else None,
                log_samples=samples_dir is not None, random_seed=int(cfg.seed), numpy_random_seed=int(cfg.seed),
                torch_random_seed=int(cfg.seed), fewshot_random_seed=int(cfg.seed), bootstrap_iters=0,
                verbosity="ERROR")
        except Exception as e:  # noqa: BLE001 - lm-eval raises many kinds; name the tasks and re-raise as ours
            raise DiqError(f"lm-eval failed on tasks {[s['name'] for s in group]}: {type(e).__name__}: {e}\n"
                           f"  fix: for hub tasks check network/HF_HUB_OFFLINE; for local tasks check the file") from e
        for s in group:
            name = s["name"]
            r = res["results"][name]
            otype = res["configs"][name]["output_type"]
            key = s.get("metric") or _primary_key(otype)
            if key not in r:
                raise DiqError(f"eval task {name!r}: metric {key!r} not in lm-eval results {sorted(r)}\n"
                               f"  fix: set eval.tasks[].metric to one of those")
            per_task[name] = {
                "value": float(r[key]), "metric": key, "category": s.get("category"), "output_type": otype,
                "n": int(res["n-samples"][name]["effective"]),
                "all": {k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and "stderr" not in k},
            }
            if samples_dir is not None and res.get("samples", {}).get(name):
                from .artifacts import write_json

                write_json(samples_dir / f"{name}.json", [
                    {"doc_id": x["doc_id"], "target": x["target"], "resps": x["resps"], "filtered": x["filtered_resps"]}
                    for x in res["samples"][name]])
    return {"tasks": per_task, "averages": aggregate(per_task, specs), "batch_size": int(cfg.batch_size),
            "limit": cfg.get("limit"), "max_gen_toks": cfg.get("max_gen_toks"), "seconds": time.time() - t0}

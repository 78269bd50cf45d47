"""Stage 6: evaluation through lm-eval (diq/evaluate.py): the generations are cached by the adapter's stage key
(None = the base model) and the eval config without the matcher; the answer matcher is its own cached step over
them. Per-item outputs stay in the match folder (``per_item``).

Record fields: ``eval_plan`` (``plan_evaluation``, before any compute), ``eval``, ``metrics``, ``averages``,
``averages_n``, ``per_item``, ``seconds.eval``, ``seconds_computed.eval``."""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from .. import evaluate as evaluation
from ..artifacts import StageDir, read_json, sha256_file, write_json
from ..models import model_key
from ..tasks.mcq import data_path

log = logging.getLogger(__name__)


def data_files(eval_cfg) -> dict[str, str]:
    """Every local file the eval config names (a local benchmark, a bundle file, a validation file), path → content
    hash: part of the generations' cache key, so an edited benchmark file is evaluated again, never answered from the
    cache of its earlier content."""
    out: dict[str, str] = {}

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and x and (x.startswith("pkg://") or "/" in x or x.endswith((".json", ".jsonl"))):
            try:
                if data_path(x).is_file():
                    out[x] = sha256_file(data_path(x))
            except (OSError, ValueError):  # a long prompt string with a "/" is not a path
                pass
    walk(eval_cfg)
    return out


def plan_evaluation(cfg, rec: dict) -> None:
    """Everything about the evaluation that can be checked before compute: task names, files, every item."""
    specs = evaluation.preflight(cfg.eval)
    rec["eval_plan"] = {s["name"]: {"category": s.get("category"),
                                    "source": (s.get("bundle") or {}).get("source") or (s.get("local") or {}).get("path")
                                    or s["name"]} for s in specs}


def eval_stage(cfg, tracker, rec: dict, adapter, stage_key, model_path: str | None = None) -> None:
    """``model_path``: a full model to evaluate instead of the run's (DPO's stack mode saves one).

    Two cached steps: ``eval`` (the generations, keyed by model, adapter and the eval config *without* the matcher)
    and ``match`` (the answer matcher over those generations, keyed by the generation folder and the matcher), so
    a change of ``eval.matcher`` re-scores in seconds."""
    model_path = model_path or rec["model_path"]
    t = time.time()
    eval_cfg = OmegaConf.to_container(cfg.eval, resolve=True)
    matcher = eval_cfg.pop("matcher", "diq")
    gen_stage = StageDir(cfg.cache_dir, "eval", {"evaluate_version": 3,  # 3: generations kept, matching separate
                                                 "model": model_key(model_path), "adapter": stage_key,
                                                 "eval": eval_cfg, "data": data_files(eval_cfg)})
    with gen_stage.lock():
        if gen_stage.done:
            log.info(f"eval: reusing the generations in {gen_stage.path}")
        else:
            gen_stage.begin()
            write_json(gen_stage.path / "generations.json",
                       evaluation.generate(model_path, adapter, cfg.eval, samples_dir=gen_stage.path / "samples"))
            gen_stage.finish()
    stage = StageDir(cfg.cache_dir, "match", {"match_version": 2,  # 2: a multiple-choice target logged as text
                                              "generations": gen_stage.key,
                                              "matcher": matcher})
    with stage.lock():
        if stage.done:
            ev = read_json(stage.path / "metrics.json")
            log.info(f"eval: reusing {stage.path}")
        else:
            stage.begin()
            ev = evaluation.match(read_json(gen_stage.path / "generations.json"), matcher,
                                  samples_dir=stage.path / "samples")
            write_json(stage.path / "metrics.json", ev)
            stage.finish()
    rec["eval"] = {**ev, "cache": str(stage.path)}
    rec["metrics"] = {name: t_["value"] for name, t_ in ev["tasks"].items()}
    rec["averages"] = ev["averages"]
    rec["averages_n"] = ev.get("averages_n")
    rec["seconds"]["eval"] = time.time() - t
    rec["seconds_computed"]["eval"] = float(ev.get("seconds") or rec["seconds"]["eval"]) + float(ev.get("seconds_match") or 0)
    rec["per_item"] = str(stage.path / "samples")
    log.info("eval: " + ", ".join(f"{n} {v:.4f}" for n, v in rec["metrics"].items()) + f" (per item: {rec['per_item']})")
    tracker.summary({**{f"eval/{n}": v for n, v in rec["metrics"].items()},
                     **{f"eval/{n}": v for n, v in ev["averages"].items() if v is not None}})
    tracker.table("eval/tasks", ["task", "category", "metric", "value", "n"],
                  [[n, t_["category"], t_["metric"], t_["value"], t_["n"]] for n, t_ in ev["tasks"].items()])

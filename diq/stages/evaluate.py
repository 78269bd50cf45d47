"""Stage 6: evaluation through lm-eval (diq/evaluate.py), cached by the adapter's stage key (None = the base model)
and the eval config; per-item outputs stay in the cache folder (``per_item``).

Record fields: ``eval_plan`` (``plan_evaluation``, before any compute), ``eval``, ``metrics``, ``averages``,
``averages_n``, ``per_item``, ``seconds.eval``, ``seconds_computed.eval``."""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from .. import evaluate as evaluation
from ..artifacts import StageDir, read_json, write_json
from ..models import model_key

log = logging.getLogger(__name__)


def plan_evaluation(cfg, rec: dict) -> None:
    """Everything about the evaluation that can be checked before compute: task names, files, every item."""
    specs = evaluation.preflight(cfg.eval)
    rec["eval_plan"] = {s["name"]: {"category": s.get("category"),
                                    "source": (s.get("bundle") or {}).get("source") or (s.get("local") or {}).get("path")
                                    or s["name"]} for s in specs}


def eval_stage(cfg, tracker, rec: dict, adapter, stage_key, model_path: str | None = None) -> None:
    """``model_path``: a full model to evaluate instead of the run's (DPO's stack mode saves one)."""
    model_path = model_path or rec["model_path"]
    t = time.time()
    stage = StageDir(cfg.cache_dir, "eval", {"evaluate_version": 2,  # 2: answer-rule and letter statistics per item
                                             "model": model_key(model_path), "adapter": stage_key,
                                             "eval": OmegaConf.to_container(cfg.eval, resolve=True)})
    with stage.lock():
        if stage.done:
            ev = read_json(stage.path / "metrics.json")
            log.info(f"eval: reusing {stage.path}")
        else:
            stage.begin()
            ev = evaluation.evaluate(model_path, adapter, cfg.eval, samples_dir=stage.path / "samples")
            write_json(stage.path / "metrics.json", ev)
            stage.finish()
    rec["eval"] = {**ev, "cache": str(stage.path)}
    rec["metrics"] = {name: t_["value"] for name, t_ in ev["tasks"].items()}
    rec["averages"] = ev["averages"]
    rec["averages_n"] = ev.get("averages_n")
    rec["seconds"]["eval"] = time.time() - t
    rec["seconds_computed"]["eval"] = float(ev.get("seconds") or rec["seconds"]["eval"])
    rec["per_item"] = str(stage.path / "samples")
    log.info("eval: " + ", ".join(f"{n} {v:.4f}" for n, v in rec["metrics"].items()) + f" (per item: {rec['per_item']})")
    tracker.summary({**{f"eval/{n}": v for n, v in rec["metrics"].items()},
                     **{f"eval/{n}": v for n, v in ev["averages"].items() if v is not None}})
    tracker.table("eval/tasks", ["task", "category", "metric", "value", "n"],
                  [[n, t_["category"], t_["metric"], t_["value"], t_["n"]] for n, t_ in ev["tasks"].items()])

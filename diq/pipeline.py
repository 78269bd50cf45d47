"""One run, read as the method: pool → decontaminate → score → select → train → (DPO) → evaluate → record.

Each stage is one call to ``diq.stages.<stage>``; each fills its own record fields as it finishes, so a failure
leaves everything known in ``record.failed.json``. ``stop_after`` ends the run after any stage.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .artifacts import sha256_obj
from .budget import budget_k
from .errors import DiqError
from .lora import check_targets
from .models import resolve_model
from .record import git_info, versions
from .scoring import score_stage
from .scoring.context import strip_code_keys
from .selection import build as build_strategy
from .stages.dpo import dpo_stage, read_preferences
from .stages.evaluate import eval_stage, plan_evaluation
from .stages.pool import pool_stage
from .stages.select import select_stage
from .stages.train import train_stage

STAGES = ("score", "select", "train", "dpo", "eval")
RESULT_KEYS = ("pool", "model", "selection", "budget", "train", "eval", "scoring", "seed")


def _with_dpo(c: dict, d: dict) -> dict:
    """The DPO stage and its preference data are part of a result only when the stage runs (so hashes of SFT-only
    runs are what they were before the stage existed)."""
    if (c.get("dpo") or {}).get("enabled"):
        d.update(dpo=c["dpo"], preference=c.get("preference"))
    return d


def config_hash(cfg: DictConfig) -> str:
    """What determines a result. ``_target_`` keys (where a component's code lives) are left out."""
    c = strip_code_keys(OmegaConf.to_container(cfg, resolve=True))
    return sha256_obj(_with_dpo(c, {k: c.get(k) for k in RESULT_KEYS}))


def cell_hash(cfg: DictConfig) -> str:
    """The configuration without its seed (seed-derived values included): runs that differ only by seed share it,
    and the report averages exactly those."""
    c = OmegaConf.to_container(cfg, resolve=False)
    c["seed"] = 0
    c = strip_code_keys(OmegaConf.to_container(OmegaConf.create(c), resolve=True))
    if c["selection"]["name"] == "none":  # the base model's row depends on the model and the evaluation only
        return sha256_obj(_with_dpo(c, {"selection": "none", "model": c.get("model"), "eval": c.get("eval")}))
    return sha256_obj(_with_dpo(c, {k: c.get(k) for k in RESULT_KEYS if k != "seed"}))


def pipeline(cfg: DictConfig, out_dir: Path, tracker, rec: dict) -> dict:
    """Fills ``rec`` in place as stages finish."""
    if cfg.stop_after not in STAGES:
        raise DiqError(f"stop_after={cfg.stop_after!r}; choose one of {', '.join(STAGES)}")
    seconds = rec["seconds"]
    rec.setdefault("seconds_computed", {s: 0.0 for s in STAGES})
    rec.update(config_hash=config_hash(cfg), cell_hash=cell_hash(cfg), git=git_info(), versions=versions(),
               config=OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("hub_fixtures"):
        rec["hub_fixtures"] = str(cfg.hub_fixtures)

    # everything that can be checked before compute (the config itself was validated by diq.run)
    plan_evaluation(cfg, rec)
    pref = read_preferences(cfg, rec)
    strat = build_strategy(cfg.selection)

    rec["stage"] = "pool"  # the stage running now: a failed record names it (run() drops it when the run completes)
    records, origins, decontam = pool_stage(cfg, out_dir, rec)
    base_only, full = strat.name == "none", strat.name == "full"
    k = len(records) if full else 0 if base_only else budget_k(cfg.budget.fraction, len(records))
    if base_only or full:
        rec["budget_fraction"] = 0.0 if base_only else 1.0
    if getattr(strat, "uses_origins", False):  # the oracle: the planted pool's known answer
        strat.origins = origins
        k = strat.k(records)
        rec["budget_fraction"] = k / len(records)
    rec["model_path"] = resolve_model(cfg.model)
    if cfg.stop_after in STAGES[STAGES.index("train"):]:  # the adapters this run will train
        check_targets(rec["model_path"], [("train.lora", cfg.train.lora)] * (not base_only) + (
            [("dpo.lora", cfg.dpo.lora)] if pref is not None and cfg.dpo.get("adapter") == "stack" else []))

    t = time.time()
    rec["stage"] = "score"
    scores = score_stage(cfg, out_dir, rec, records, strat.needs, decontam)
    seconds["score"] = time.time() - t
    if cfg.stop_after == "score":
        return rec

    adapter, stage_key = None, None  # the base model: no selection, no training; only its evaluation
    if base_only:
        rec.update(n_selected=0, selection_hash=None)
    else:
        t = time.time()
        rec["stage"] = "select"
        sel = select_stage(cfg, out_dir, tracker, rec, records, scores, strat, k, origins)
        seconds["select"] = rec["seconds_computed"]["select"] = time.time() - t
    if cfg.stop_after == "select" or (base_only and cfg.stop_after == "train"):
        return rec
    if not base_only:
        rec["stage"] = "train"
        adapter, stage_key = train_stage(cfg, tracker, rec, records, sel.ids)
    if cfg.stop_after == "train":
        return rec

    eval_model = None
    if pref is not None:
        rec["stage"] = "dpo"
        adapter, stage_key, eval_model = dpo_stage(cfg, tracker, rec, adapter, stage_key, pref)
    if cfg.stop_after == "dpo":
        return rec
    rec["stage"] = "eval"
    eval_stage(cfg, tracker, rec, adapter, stage_key, eval_model)
    return rec

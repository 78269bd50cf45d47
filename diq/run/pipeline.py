"""One run, read as the method: pool → decontaminate → score → select → train → (DPO) → evaluate → record.

Each stage is a ``diq.stages.base.Stage`` (``diq/stages/<stage>/``); ``pipeline`` walks them in order, and each fills
its own section of the typed record (``diq/record.py``) as it finishes, so a failure leaves everything known in
``record.failed.json``. ``stop_after`` cuts the plan short after any stage.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from diq.artifacts import sha256_obj
from diq.engine.models import resolve_model
from diq.errors import DiqError
from diq.record import RunRecord
from diq.run.provenance import git_info, versions
from diq.stages.base import RunState, Stage
from diq.stages.dpo import DpoStage
from diq.stages.evaluate import EvalStage
from diq.stages.pool import PoolStage
from diq.stages.score import ScoreStage
from diq.stages.score.context import strip_code_keys
from diq.stages.select import SelectStage
from diq.stages.select.strategies import build as build_strategy
from diq.stages.train import TrainStage

PLAN: tuple[Stage, ...] = (PoolStage(), ScoreStage(), SelectStage(), TrainStage(), DpoStage(), EvalStage())
STAGES = tuple(s.name for s in PLAN[1:])  # the choices of stop_after (the pool always runs)
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
    if not build_strategy(cfg.selection).trains:  # the base model's row depends on the model and the evaluation only
        return sha256_obj(_with_dpo(c, {"selection": c["selection"]["name"], "model": c.get("model"),
                                        "eval": c.get("eval")}))
    return sha256_obj(_with_dpo(c, {k: c.get(k) for k in RESULT_KEYS if k != "seed"}))


def pipeline(cfg: DictConfig, out_dir: Path, tracker, rec: RunRecord) -> RunRecord:
    """Walks ``PLAN``: every stage's ``prepare`` first (what can be checked before compute), then each stage up to
    ``stop_after`` that applies to this run, timed as run (``seconds``) and as computed (``seconds_computed``: a
    reused cache entry reports its first run's). Fills ``rec`` in place, so a failure leaves everything known (and
    ``rec.stage``, the stage that was running) in ``record.failed.json``."""
    if cfg.stop_after not in STAGES:
        raise DiqError(f"stop_after={cfg.stop_after!r}; choose one of {', '.join(STAGES)}")
    rec.seconds_computed = {s.name: 0.0 for s in PLAN}
    rec.update(config_hash=config_hash(cfg), cell_hash=cell_hash(cfg), git=git_info(), versions=versions(),
               config=OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("hub_fixtures"):
        rec.hub_fixtures = str(cfg.hub_fixtures)
    rec.model_path = resolve_model(cfg.model)
    state = RunState(cfg=cfg, out_dir=out_dir, tracker=tracker, rec=rec, strategy=build_strategy(cfg.selection))
    for stage in PLAN:  # everything that can be checked before compute (the config itself was validated by diq.run)
        stage.prepare(state)
    for stage in PLAN[:[s.name for s in PLAN].index(cfg.stop_after) + 1]:
        if not stage.runs(state):
            stage.skipped(state)
            continue
        stage.check_inputs(state)
        rec.stage = stage.name  # the stage running now: a failed record names it (run() drops it on completion)
        t = time.time()
        computed = stage.compute(state)
        rec.seconds[stage.name] = time.time() - t
        rec.seconds_computed[stage.name] = rec.seconds[stage.name] if computed is None else float(computed)
    return rec

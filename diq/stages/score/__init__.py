"""Stage 2, score: the scores the strategy needs, each computed once and cached (``ScoreStage``). Record section
``score``: ``scores`` (per scorer: cache folder, seconds, reused; the validation set's ids and hash); the
validation set's decontamination goes to the pool's section (``decontamination.validation``).

One module per concern: ``cache`` (the content-addressed score cache), ``context`` (what every scorer shares; the
validation set comes from the run's evaluation plan, ``diq/tasks/plan.py``), ``warmup`` (warm-up LoRA checkpoints),
and the scorers ``influence_score``, ``less_score``, ``similarity_score`` and ``difficulty_score`` (with
``difficulty/``: the judge, the classifier, the proxies).

A strategy names the scores it needs (``needs:`` in ``conf/selection/<name>.yaml``); score ``<name>`` is computed by
the function that ``scoring.<name>._target_`` names (``conf/scoring/default.yaml``; for difficulty, the chosen
``conf/scoring/difficulty/<source>.yaml``), called with the run's ``ScoreContext``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from diq import CONF
from diq.config.components import component
from diq.engine.lora import check_targets
from diq.engine.models import resolve_model
from diq.errors import DiqError
from diq.stages.base import RunState, Stage
from diq.stages.score.context import ScoreContext
from diq.stages.score.difficulty import check_perspective

__all__ = ["ScoreContext", "ScoreStage", "compute_scores", "scorer"]  # SCORER_CALLS: diq.stages.score.cache


def scorer(cfg: DictConfig, name: str):
    """The function that computes score ``name``: ``scoring.<name>._target_``, built by Hydra's ``instantiate``."""
    block = cfg.scoring.get(name)
    target = block.get("_target_") if block is not None else None
    if block is not None and not target:  # a config saved before scorers were named by `_target_` (an older record)
        target = _conf_target(name, block)
    if not target:
        known = sorted(k for k, v in cfg.scoring.items() if isinstance(v, DictConfig) and v.get("_target_"))
        raise DiqError(f"no scorer for score {name!r}: scoring.{name}._target_ is not set\n  fix: a strategy's `needs` "
                       f"names scores among {', '.join(known)}, or give scoring.{name} a `_target_`")
    return component(target, f"scoring.{name}._target_")



def _conf_target(name: str, block) -> str | None:
    from omegaconf import OmegaConf

    conf = CONF / "scoring"
    path = conf / "difficulty" / f"{block.get('source')}.yaml" if name == "difficulty" else conf / "default.yaml"
    if not path.exists():
        return None
    node = OmegaConf.load(path)
    return node.get("_target_") if name == "difficulty" else (node.get(name) or {}).get("_target_")


def compute_scores(needs: list[str], records: list[dict], model_path: str, cfg: DictConfig, out_dir: Path,
                   decontam=None, plan=None) -> tuple[dict, dict]:
    """Compute (or load) the named scores. Returns (name → array, info for the record)."""
    ctx = ScoreContext(records, model_path, cfg, out_dir, decontam, plan)
    fns = {name: scorer(cfg, name) for name in needs}  # every scorer is found before anything is computed
    if set(needs) & {"influence", "less", "similarity"}:
        ctx.val  # noqa: B018 - build, check and decontaminate the validation set before any scoring starts
    if "difficulty" in needs:  # fail before any expensive scoring
        check_perspective(cfg.selection.get("perspective") or cfg.scoring.difficulty.perspective)
    scores, info = {}, {}
    for name in needs:
        if name == "influence" and cfg.scoring.influence.get("shard_index") is not None:
            from diq.stages.score.influence_score import score_influence_shard

            res = score_influence_shard(ctx, int(cfg.scoring.influence.shard_index), int(cfg.scoring.influence.shards))
            info["influence_shard"] = res.pop("_meta")
            continue
        res = fns[name](ctx)
        meta = res.pop("_meta")
        info[name] = meta
        if name == "difficulty":
            persp = check_perspective(cfg.selection.get("perspective") or cfg.scoring.difficulty.perspective)
            arr = res[persp] if persp in res else res["value"]
            info[name]["perspective"] = persp if persp in res else f"n/a (proxy {cfg.scoring.difficulty.source})"
            info[name]["source"] = cfg.scoring.difficulty.source
            scores[name] = arr
        elif name == "influence":
            scores[name] = res["score"]
            scores["loss"] = res["loss"]
        else:
            scores[name] = res["value"]
    if ctx._val is not None:
        v = ctx._val[1]
        info["validation"] = {"n": v["n"], "hash": v["hash"], "ids": v["tasks"], "per_task": v.get("per_task"),
                              "kinds": v.get("kinds")}
    if ctx.val_decontam is not None:
        info["validation_decontamination"] = ctx.val_decontam
    return scores, info


class ScoreStage(Stage):
    """Each score the strategy needs, computed once per content key (``cache``: one entry per scorer)."""

    name = "score"
    reads = ("records",)
    writes = ("scores",)
    section = "score"

    def prepare(self, state: RunState) -> None:
        cfg = state.cfg
        if cfg.scoring.influence.get("shard_index") is not None and cfg.stop_after != "score":
            raise DiqError(f"scoring.influence.shard_index={cfg.scoring.influence.shard_index} computes one shard "
                           f"only\n  fix: add stop_after=score to shard runs; a later run without shard_index merges "
                           f"them")

    def compute(self, state: RunState) -> float:
        cfg, rec, needs = state.cfg, state.rec, state.strategy.needs
        if not needs:
            state.scores = {}
            return 0.0
        score_model = resolve_model(cfg.scoring.model) if cfg.scoring.get("model") else rec.model_path
        check_targets(score_model, [(k, b) for k, b, need in (("train.lora", cfg.train.lora, "influence"),
                                                              ("scoring.less.lora", cfg.scoring.less.lora, "less"))
                                    if need in needs or (need == "influence" and "difficulty" in needs)])
        scores, info = compute_scores(needs, state.records, score_model, cfg, state.out_dir, decontam=state.decontam,
                                      plan=state.plan)
        if "validation_decontamination" in info:
            pool = rec.stages.pool
            pool.decontamination = {**(pool.decontamination or {}), "validation": info.pop("validation_decontamination")}
        info["scoring_model"] = score_model
        rec.stages.score.scores = info
        state.scores = scores
        return sum(float(v.get("seconds") or 0) for v in info.values() if isinstance(v, dict))

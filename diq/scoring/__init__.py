"""Stage 2, score: the scores the strategy needs, each computed once and cached (``score_stage``; record fields
``scores`` (per scorer: cache folder, seconds, reused; the validation set's ids and hash), ``decontamination.validation``,
``seconds_computed.score``).

Per-sample scores, one module per concern: ``cache`` (the content-addressed score cache), ``context`` (what every
scorer shares), ``validation`` (the validation set and its decontamination), ``warmup`` (warm-up LoRA checkpoints),
and the scorers ``influence``, ``less``, ``similarity`` and ``difficulty``.

A strategy names the scores it needs (``needs:`` in ``conf/selection/<name>.yaml``); score ``<name>`` is computed by
the function that ``scoring.<name>._target_`` names (``conf/scoring/default.yaml``; for difficulty, the chosen
``conf/scoring/difficulty/<source>.yaml``), called with the run's ``ScoreContext``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..components import component
from ..difficulty import check_perspective
from ..errors import DiqError
from ..lora import check_targets
from ..models import resolve_model
from .context import ScoreContext

__all__ = ["ScoreContext", "compute_scores", "score_stage", "scorer"]  # SCORER_CALLS: diq.scoring.cache


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

    conf = Path(__file__).resolve().parents[2] / "conf" / "scoring"
    path = conf / "difficulty" / f"{block.get('source')}.yaml" if name == "difficulty" else conf / "default.yaml"
    if not path.exists():
        return None
    node = OmegaConf.load(path)
    return node.get("_target_") if name == "difficulty" else (node.get(name) or {}).get("_target_")


def compute_scores(needs: list[str], records: list[dict], model_path: str, cfg: DictConfig, out_dir: Path,
                   decontam=None) -> tuple[dict, dict]:
    """Compute (or load) the named scores. Returns (name → array, info for the record)."""
    ctx = ScoreContext(records, model_path, cfg, out_dir, decontam)
    fns = {name: scorer(cfg, name) for name in needs}  # every scorer is found before anything is computed
    if set(needs) & {"influence", "less", "similarity"}:
        ctx.val  # noqa: B018 - build, check and decontaminate the validation set before any scoring starts
    if "difficulty" in needs:  # fail before any expensive scoring
        check_perspective(cfg.selection.get("perspective") or cfg.scoring.difficulty.perspective)
    scores, info = {}, {}
    for name in needs:
        if name == "influence" and cfg.scoring.influence.get("shard_index") is not None:
            from .influence import score_influence_shard

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


def score_stage(cfg: DictConfig, out_dir: Path, rec: dict, records: list[dict], needs: list[str], decontam) -> dict:
    if cfg.scoring.influence.get("shard_index") is not None and cfg.stop_after != "score":
        raise DiqError(f"scoring.influence.shard_index={cfg.scoring.influence.shard_index} computes one shard only\n"
                       f"  fix: add stop_after=score to shard runs; a later run without shard_index merges them")
    if not needs:
        return {}
    score_model = resolve_model(cfg.scoring.model) if cfg.scoring.get("model") else rec["model_path"]
    check_targets(score_model, [(k, b) for k, b, need in (("train.lora", cfg.train.lora, "influence"),
                                                          ("scoring.less.lora", cfg.scoring.less.lora, "less"))
                                if need in needs or (need == "influence" and "difficulty" in needs)])
    scores, info = compute_scores(needs, records, score_model, cfg, out_dir, decontam=decontam)
    if "validation_decontamination" in info:
        rec.setdefault("decontamination", {})["validation"] = info.pop("validation_decontamination")
    info["scoring_model"] = score_model
    rec["scores"] = info
    rec["seconds_computed"]["score"] = sum(float(v.get("seconds") or 0) for v in info.values() if isinstance(v, dict))
    return scores

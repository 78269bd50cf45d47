"""Per-sample scores, one module per concern: ``cache`` (the content-addressed score cache), ``context`` (what every
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
from .context import ScoreContext

__all__ = ["ScoreContext", "compute_scores", "scorer"]  # SCORER_CALLS: diq.scoring.cache


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

"""DIQ's influence score: Dot(z) = ⟨∇ℓ(z), ḡ_val⟩ over the LoRA parameters (docs/method.md), from the exact engine in
``diq/engine/influence.py``, optionally projected, optionally summed over warm-up checkpoints, optionally sharded."""

from __future__ import annotations

from diq.engine.gradients import resolve_batch_tokens
from diq.engine.lora import lora_key
from diq.errors import DiqError
from diq.stages.score.context import ScoreContext, plain, scoring_model
from diq.stages.score.result import Score
from diq.stages.score.warmup import inherited_train, warmup_checkpoints


def influence_key(ctx: ScoreContext) -> dict:
    icfg = plain(ctx.cfg.scoring.influence)
    icfg.pop("shards", None)
    icfg.pop("shard_index", None)  # sharding never changes the result (bitwise), so it is not in the key
    if not icfg["warmup"].get("enabled"):
        icfg["warmup"] = {"enabled": False}  # a disabled warm-up's lr/epochs change nothing: not in the key
    else:
        icfg["warmup"]["train"] = inherited_train(ctx.cfg.train)
    return {"lora": lora_key(ctx.cfg.train.lora), "val_hash": ctx.val[1]["hash"], "influence": icfg}


def influence_pass(ctx: ScoreContext, shard: tuple[int, int]) -> tuple[dict, dict]:
    """One (shard of a) influence pass over every warm-up checkpoint. Besides Dot it returns each sample's response
    loss and gradient norm, by-products of the same backward pass."""
    from diq.engine.influence import dot_scores, mean_gradient

    icfg = ctx.cfg.scoring.influence
    lora_cfg = ctx.cfg.train.lora
    val_recs, val_info = ctx.val
    if icfg.warmup.enabled:
        ckpts = warmup_checkpoints(ctx, icfg.warmup, lora_cfg, "diq")
        ckpts = ckpts if icfg.warmup.checkpoints == "all" else ckpts[-1:]
    else:
        ckpts = [{"adapter": None, "mean_lr": 1.0}]
    pool_enc = ctx.encode_all(ctx.records, icfg)
    val_enc = ctx.encode_all(val_recs, icfg)
    total: dict = {"score": 0.0, "dot": 0.0}
    for c in ckpts:
        model = scoring_model(ctx, lora_cfg, c["adapter"], icfg)
        bt = resolve_batch_tokens(icfg.batch_tokens, next(model.parameters()).device)
        target = mean_gradient(model, val_enc, ctx.tok.pad_token_id, bt)
        res = dot_scores(model, pool_enc, ctx.tok.pad_token_id, target, bt,
                         proj_dim=icfg.get("proj_dim"), proj_seed=int(icfg.proj_seed), normalize=icfg.normalize,
                         projection=icfg.get("projection", "rademacher"), proj_nnz=int(icfg.get("proj_nnz", 1)),
                         shard=shard)
        w = float(c["mean_lr"]) if len(ckpts) > 1 else 1.0
        total["score"] = total["score"] + w * res["score"]
        total["dot"] = total["dot"] + w * res["dot"]
        if "loss" not in total:  # the first checkpoint's loss (the base model's when not warmed up)
            total["loss"], total["grad_norm"] = res["loss"], res["grad_norm"]
        del model
    return total, {"n_val": val_info["n"], "val_hash": val_info["hash"], "val_ids": val_info["tasks"],
                   "checkpoints": len(ckpts), "n_tokens": sum(len(e.input_ids) for e in pool_enc)}


def influence_shard(ctx: ScoreContext, index: int, count: int) -> dict:
    """One shard (batches index, index+count, … of the global length-sorted plan), cached on its own."""
    if not 0 <= index < count:
        raise DiqError(f"scoring.influence.shard_index={index} with shards={count}\n  fix: use 0 … {count - 1}")
    return ctx.cached(f"influence_shard/{index}-of-{count}", influence_key(ctx),
                      lambda: influence_pass(ctx, (index, count)))


def influence_arrays(ctx: ScoreContext) -> dict:
    """The influence pass's cached arrays (``score``, ``dot``, ``loss``, ``grad_norm``) and ``_meta``; shards are
    computed (or reused) and merged."""
    from diq.engine.influence import merge_shards

    count = int(ctx.cfg.scoring.influence.get("shards") or 1)

    def compute():
        if count == 1:
            return influence_pass(ctx, (0, 1))
        parts = [influence_shard(ctx, i, count) for i in range(count)]
        metas = [p.pop("_meta") for p in parts]
        return merge_shards(parts), {**{k: v for k, v in metas[0].items() if k not in ("cache", "reused", "seconds")},
                                     "shards": count, "shard_caches": [m["cache"] for m in metas]}

    return ctx.cached("influence", influence_key(ctx), compute)


def score_influence(ctx: ScoreContext) -> Score:
    """Dot (cosine with ``normalize: cosine``), in the ``dot`` column, and the first checkpoint's response loss as
    score ``loss``. With ``scoring.influence.shard_index`` set, only that shard is computed (recorded as
    ``influence_shard``; a later run without it merges the shards)."""
    icfg = ctx.cfg.scoring.influence
    if icfg.get("shard_index") is not None:
        part = influence_shard(ctx, int(icfg.shard_index), int(icfg.shards))
        return Score.cached(part, value=None, record_as="influence_shard")
    arrays = influence_arrays(ctx)
    return Score.cached(arrays, value="score", column="dot", extra={"loss": arrays["loss"]})

"""The LESS baseline (Xia et al., 2024): warm-up LoRA (r = 128 on q/k/v/o), Adam-preconditioned training features
and SGD validation features per checkpoint, projected (``diq/engine/projection.py``), cosine, mean per task, max over
tasks, summed over checkpoints weighted by each epoch's mean learning rate."""

from __future__ import annotations

from pathlib import Path

import torch

from diq.engine.gradients import resolve_batch_tokens
from diq.stages.score.context import ScoreContext, plain, scoring_model
from diq.stages.score.result import Score
from diq.stages.score.warmup import inherited_train, warmup_checkpoints


def less_key(ctx: ScoreContext) -> dict:
    """The LESS block, the validation set and the train settings its warm-up inherits."""
    return {"val_hash": ctx.val[1]["hash"], "less": plain(ctx.cfg.scoring.less),
            "warmup_train": inherited_train(ctx.cfg.train)}


def score_less(ctx: ScoreContext) -> Score:
    from diq.engine.influence import less_combine, less_features

    lcfg = ctx.cfg.scoring.less
    val_recs, val_info = ctx.val
    key = less_key(ctx)

    def compute():
        ckpts = warmup_checkpoints(ctx, lcfg.warmup, lcfg.lora, "less")
        pool_enc = ctx.encode_all(ctx.records, lcfg)
        val_enc = ctx.encode_all(val_recs, lcfg)
        tf, vf, w = [], [], []
        pk = {"projection": lcfg.get("projection", "sjlt"), "proj_nnz": int(lcfg.get("proj_nnz", 1))}
        for c in ckpts:
            model = scoring_model(ctx, lcfg.lora, c["adapter"], lcfg, lora_name="scoring.less.lora")
            adam = torch.load(Path(c["adapter"]).parent / "adam.pt", weights_only=True)
            bt = resolve_batch_tokens(lcfg.batch_tokens, next(model.parameters()).device)
            tf.append(less_features(model, pool_enc, ctx.tok.pad_token_id, bt, int(lcfg.proj_dim),
                                    int(lcfg.proj_seed), adam, desc=f"LESS train feats (ckpt {c['epoch']})", **pk))
            vf.append(less_features(model, val_enc, ctx.tok.pad_token_id, bt, int(lcfg.proj_dim),
                                    int(lcfg.proj_seed), None, desc=f"LESS val feats (ckpt {c['epoch']})", **pk))
            w.append(float(c["mean_lr"]))
        return {"value": less_combine(tf, vf, w, [r["task"] for r in val_recs])}, \
            {"checkpoints": len(ckpts), "weights": w, "val_hash": val_info["hash"]}

    return Score.cached(ctx.cached("less", key, compute))

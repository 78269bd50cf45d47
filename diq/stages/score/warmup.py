"""Warm-up LoRA training before gradient scoring (LESS always; DIQ's influence when ``warmup.enabled``): a seeded
random slice of the pool, one checkpoint (adapter + Adam state + the epoch's mean learning rate) per epoch. Cached
like any stage, under ``<cache_dir>/warmup/<tag>``."""

from __future__ import annotations

import random

from omegaconf import OmegaConf

from diq.artifacts import StageDir
from diq.stages.score import cache
from diq.stages.score.context import ScoreContext, plain

# The run's train settings a warm-up inherits (its epochs, lr, max length, seed and LoRA come from the warm-up block).
# They change the warm-up adapters, so they are part of its key and of every score computed from them. Device and
# gradient checkpointing change rounding only; num_processes does not apply (the warm-up runs in the scoring process).
INHERITED = ("effective_batch", "micro_batch", "scheduler", "warmup_ratio", "weight_decay", "max_grad_norm", "dtype")


def inherited_train(train_cfg) -> dict:
    t = plain(train_cfg)
    return {k: t.get(k) for k in INHERITED}


def warmup_checkpoints(ctx: ScoreContext, wcfg, lora_cfg, tag: str) -> list[dict]:
    from diq.engine.finetune import finetune

    key = {**ctx.base_key(), "warmup": plain(wcfg), "lora": plain(lora_cfg), "train": inherited_train(ctx.cfg.train)}
    stage = StageDir(ctx.cache, f"warmup/{tag}", key)

    def train(folder):
        n = max(1, int(round(float(wcfg.fraction) * len(ctx.records))))
        rng = random.Random(f"warmup:{wcfg.seed}")
        subset = [ctx.records[i] for i in sorted(rng.sample(range(len(ctx.records)), n))]
        tcfg = OmegaConf.create({**plain(ctx.cfg.train), "lora": plain(lora_cfg), "epochs": int(wcfg.epochs),
                                 "lr": float(wcfg.lr), "max_length": int(wcfg.max_length), "seed": int(wcfg.seed)})
        cache.SCORER_CALLS[f"warmup/{tag}"] += 1
        info = finetune(ctx.model_path, subset, tcfg, folder, checkpoint_every_epoch=True,
                        lora_name="train.lora" if tag == "diq" else f"scoring.{tag}.lora")
        return {"checkpoints": info["checkpoints"], "n_warmup": n}

    stage.get_or_compute(train)
    return stage.meta()["checkpoints"]

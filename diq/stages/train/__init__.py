"""Stage 4, train: LoRA fine-tuning on the selected samples (``diq/engine/finetune.py``), cached by the model, the
training config and the selection.

Record section ``train``: ``train`` (steps, losses, adapter, cache)."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from diq.artifacts import StageDir
from diq.config.checks import _int, _num, check_device, check_dtype, check_lora, check_scheduler
from diq.engine.lora import check_targets
from diq.engine.models import model_key
from diq.stages.base import Checks, RunState, Stage

log = logging.getLogger(__name__)


class TrainStage(Stage):
    name = "train"
    reads = ("records", "selection")
    writes = ("adapter", "stage_key")
    section = "train"

    def check(self, c: Checks) -> None:
        """``train.*``. Its device must exist here when the run trains, or when a scorer's warm-up trains with it."""
        from diq.stages.score import uses_scorers

        tr, needs = c.cfg.train, c.needs
        check_lora(tr.lora, "train.lora")
        _int(tr.epochs, "train.epochs", 1, fix="train.epochs ≥ 1; to evaluate the untuned model use selection=none")
        _num(tr.lr, "train.lr", 1e-12, 1.0, "a learning rate such as 1e-4")
        _int(tr.max_length, "train.max_length", 1, fix="tokens per sample (prompt + response), e.g. 8192")
        _int(tr.effective_batch, "train.effective_batch", 1, fix="samples per optimizer step, e.g. 16")
        _int(tr.micro_batch, "train.micro_batch", 1, fix="samples per forward pass, e.g. 2")
        _int(tr.num_processes, "train.num_processes", 1, fix="1, or N processes (torchrun) on one node")
        _num(tr.warmup_ratio, "train.warmup_ratio", 0.0, 1.0, "the share of steps spent warming up the lr, e.g. 0.03")
        _num(tr.weight_decay, "train.weight_decay", 0.0, 10.0, "e.g. 0.0")
        _num(tr.max_grad_norm, "train.max_grad_norm", 1e-12, 1e12, "the gradient clipping norm, e.g. 1.0")
        check_scheduler(tr.scheduler, "train.scheduler", "cosine (the paper's) or linear")
        check_dtype(tr.dtype, "train.dtype")
        trains = c.strategy.trains and c.reaches("train")
        warms = "less" in needs or (uses_scorers(needs)["influence"] and bool(c.cfg.scoring.influence.warmup.enabled))
        check_device(tr.device, "train.device", used=(trains or warms) and c.here)

    def prepare(self, state: RunState) -> None:
        """The adapters this run will train name modules the model has (before any scoring)."""
        cfg = state.cfg
        if cfg.stop_after in ("train", "dpo", "eval"):
            check_targets(state.model_path, [("train.lora", cfg.train.lora)] * state.strategy.trains)

    def runs(self, state: RunState) -> bool:
        return state.strategy.trains

    def key(self, state: RunState) -> dict:
        cfg, rec = state.cfg, state.rec
        return {"model": model_key(state.model_path), "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
                "train": OmegaConf.to_container(cfg.train, resolve=True),
                "selection_hash": rec.stages.select.selection_hash, "pool_hash": rec.stages.pool.pool_hash}

    def compute(self, state: RunState) -> float | None:
        cfg, tracker = state.cfg, state.tracker
        stage = StageDir(cfg.cache_dir, "train", self.key(state))

        def train(folder):
            from diq.engine.finetune import finetune, finetune_multiprocess

            by_id = {r["id"]: r for r in state.records}
            subset = [by_id[i] for i in state.selection.ids]
            if int(cfg.train.get("num_processes") or 1) > 1:
                info = finetune_multiprocess(state.model_path, subset, cfg.train, folder, int(cfg.train.num_processes))
            else:
                info = finetune(state.model_path, subset, cfg.train, folder,
                                on_step=lambda r: tracker.log({"train/loss": r["loss"], "train/lr": r["lr"]},
                                                              step=r["step"]))
            return {"result": info}

        meta, reused = stage.get_or_compute(train)
        info = meta["result"]
        if reused:
            log.info(f"train: reusing {stage.path}")
        state.rec.stages.train.train = {**info, "cache": str(stage.path)}
        log.info(f"train: {info.get('steps')} steps, final loss {info.get('final_loss')} ({stage.path})")
        state.adapter, state.stage_key = info["adapter"], stage.key
        return float(info["seconds"]) if info.get("seconds") else None

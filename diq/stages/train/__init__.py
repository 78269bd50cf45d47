"""Stage 4, train: LoRA fine-tuning on the selected samples (``diq/engine/finetune.py``), cached by the model, the
training config and the selection.

Record section ``train``: ``train`` (steps, losses, adapter, cache)."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from diq.artifacts import StageDir
from diq.engine.lora import check_targets
from diq.engine.models import model_key
from diq.stages.base import RunState, Stage

log = logging.getLogger(__name__)


class TrainStage(Stage):
    name = "train"
    reads = ("records", "selection")
    writes = ("adapter", "stage_key")
    section = "train"

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

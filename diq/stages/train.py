"""Stage 4: LoRA fine-tuning on the selected samples, cached by the model, the training config and the selection.

Record fields: ``train`` (steps, losses, adapter, cache), ``seconds.train``, ``seconds_computed.train``. Returns (adapter, stage key)."""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from ..artifacts import StageDir
from ..models import model_key

log = logging.getLogger(__name__)


def train_stage(cfg, tracker, rec: dict, records: list[dict], selected: list[str]) -> tuple[str, str]:
    t0 = time.time()
    model_path = rec["model_path"]
    by_id = {r["id"]: r for r in records}
    stage = StageDir(cfg.cache_dir, "train", {"model": model_key(model_path),
                                              "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
                                              "train": OmegaConf.to_container(cfg.train, resolve=True),
                                              "selection_hash": rec["selection_hash"], "pool_hash": rec["pool_hash"]})
    with stage.lock():
        if stage.done:
            info = stage.meta()["result"]
            log.info(f"train: reusing {stage.path}")
        else:
            from ..train import finetune, finetune_multiprocess

            stage.begin()
            subset = [by_id[i] for i in selected]
            if int(cfg.train.get("num_processes") or 1) > 1:
                info = finetune_multiprocess(model_path, subset, cfg.train, stage.path, int(cfg.train.num_processes))
            else:
                info = finetune(model_path, subset, cfg.train, stage.path,
                                on_step=lambda r: tracker.log({"train/loss": r["loss"], "train/lr": r["lr"]},
                                                              step=r["step"]))
            stage.finish({"result": info})
    rec["train"] = {**info, "cache": str(stage.path)}
    rec["seconds"]["train"] = time.time() - t0
    rec["seconds_computed"]["train"] = float(info.get("seconds") or rec["seconds"]["train"])
    log.info(f"train: {info.get('steps')} steps, final loss {info.get('final_loss')} ({stage.path})")
    return info["adapter"], stage.key

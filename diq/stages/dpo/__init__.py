"""Stage 5 (with ``dpo=trl``), dpo: preference optimisation after SFT (``trainer``), cached by the SFT stage key, the
DPO config and the preference data (``preference``).

Record section ``dpo``: ``preference`` (read and checked before any compute), ``dpo``."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from diq.artifacts import StageDir
from diq.engine.lora import check_targets
from diq.engine.models import model_key
from diq.stages.base import RunState, Stage

log = logging.getLogger(__name__)


class DpoStage(Stage):
    name = "dpo"
    reads = ("preference",)
    writes = ("adapter", "stage_key", "eval_model")
    section = "dpo"

    def prepare(self, state: RunState) -> None:
        """The preference pairs, read and checked up front (before any scoring), and the DPO adapter's modules."""
        cfg = state.cfg
        if not cfg.dpo.get("enabled"):
            return
        from diq.stages.dpo.preference import load_preference

        state.preference = load_preference(cfg.preference)
        state.rec.stages.dpo.preference = state.preference[2]
        if cfg.stop_after in ("train", "dpo", "eval") and cfg.dpo.get("adapter") == "stack":
            check_targets(state.model_path, [("dpo.lora", cfg.dpo.lora)])

    def runs(self, state: RunState) -> bool:
        return state.preference is not None

    def key(self, state: RunState) -> dict:
        info = state.preference[2]
        return {"model": model_key(state.model_path), "sft": state.stage_key,
                "dpo": OmegaConf.to_container(state.cfg.dpo, resolve=True), "preference": info["hash"],
                "heldout": info["heldout_hash"]}

    def compute(self, state: RunState) -> float | None:
        cfg, rec, tracker = state.cfg, state.rec, state.tracker
        pairs, held, _ = state.preference
        stage = StageDir(cfg.cache_dir, "dpo", self.key(state))

        def train(folder):
            from diq.stages.dpo.trainer import run_dpo

            off = int((rec.stages.train.train or {}).get("steps") or 0)  # W&B steps keep rising after SFT's
            return {"result": run_dpo(state.model_path, state.adapter, pairs, held, cfg.dpo, folder,
                                      on_log=lambda d, step: tracker.log(d, step=off + step))}

        meta, reused = stage.get_or_compute(train)
        res = meta["result"]
        if reused:
            log.info(f"dpo: reusing {stage.path}")
        rec.stages.dpo.dpo = {k: v for k, v in res.items() if k != "log_history"} | {"cache": str(stage.path)}
        hb, ha = res["heldout_before"], res["heldout_after"]
        tracker.summary({"dpo/steps": res["steps"], "dpo/final_loss": res["final_loss"],
                         "dpo/heldout_margin_before": hb["margin"], "dpo/heldout_margin_after": ha["margin"]})
        state.adapter, state.stage_key, state.eval_model = res["adapter"], stage.key, res["model"]
        return float(res["seconds"]) if res.get("seconds") else None

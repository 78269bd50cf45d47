"""Stage 5 (with ``dpo=trl``), dpo: preference optimisation after SFT (``trainer``), cached by the SFT stage key, the
DPO config and the preference data (``preference``).

Record section ``dpo``: ``preference`` (read and checked before any compute), ``dpo``."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from diq.artifacts import StageDir
from diq.config.checks import (
    _choice,
    _int,
    _num,
    check_device,
    check_dtype,
    check_lora,
    check_scheduler,
    dpo_loss_types,
)
from diq.engine.lora import check_targets
from diq.engine.models import model_key
from diq.errors import DiqError
from diq.stages.base import Checks, RunState, Stage

log = logging.getLogger(__name__)


class DpoStage(Stage):
    name = "dpo"
    reads = ("preference",)
    writes = ("adapter", "stage_key", "eval_model")
    section = "dpo"

    def check(self, c: Checks) -> None:
        """``dpo.*`` and ``preference.*``, when the stage is enabled."""
        cfg = c.cfg
        d = cfg.get("dpo") or {}
        if not d.get("enabled"):
            return
        if d.adapter not in ("continue", "stack"):
            raise DiqError(f"dpo.adapter={d.adapter!r}\n  fix: continue (keep training the SFT LoRA) or stack (new LoRA)")
        _num(d.beta, "dpo.beta", 1e-6, 100.0, "the DPO temperature, e.g. 0.1")
        _num(d.lr, "dpo.lr", 1e-12, 1.0, "a learning rate such as 5e-6")
        _num(d.epochs, "dpo.epochs", 1e-6, 1000.0, "epochs over the preference pairs, e.g. 1")
        for key in ("per_device_batch", "grad_accum"):
            _int(d[key], f"dpo.{key}", 1, fix="a positive integer")
        _int(d.max_length, "dpo.max_length", 16, fix="tokens per prompt + response, e.g. 1024")
        _num(d.get("warmup_ratio", 0.0), "dpo.warmup_ratio", 0.0, 1.0, "the share of steps warming up the lr, e.g. 0")
        if d.adapter == "stack":
            check_lora(d.lora, "dpo.lora")
        check_dtype(d.dtype, "dpo.dtype")
        check_scheduler(d.get("scheduler", "linear"), "dpo.scheduler", "linear (TRL's DPO example)")
        known = dpo_loss_types()
        if known:
            _choice(d.get("loss_type", "sigmoid"), "dpo.loss_type", known, "sigmoid (DPO)")
        _int(cfg.preference.get("seed", 0), "preference.seed", 0, fix="a non-negative integer (the held-out draw)")
        check_device(d.device, "dpo.device", used=c.reaches("dpo") and c.here)
        p = cfg.preference
        _int(p.get("holdout") or 0, "preference.holdout", 0, fix="held-out pairs for the margin, e.g. 50")
        if p.get("limit") is not None:
            _int(p.limit, "preference.limit", 1, fix="at most N training pairs, or null for all")

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

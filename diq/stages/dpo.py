"""Stage 5 (with ``dpo=trl``): preference optimisation after SFT (diq/dpo.py), cached by the SFT stage key, the DPO
config and the preference data.

Record fields: ``preference`` (read and checked before any compute: ``read_preferences``), ``dpo``,
``seconds.dpo``, ``seconds_computed.dpo``. Returns (adapter, stage key, model to evaluate)."""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from ..artifacts import StageDir
from ..models import model_key

log = logging.getLogger(__name__)


def read_preferences(cfg, rec: dict):
    """The preference pairs, read and checked up front (before any scoring): (pairs, held-out, info) or None."""
    if not cfg.dpo.get("enabled"):
        return None
    from ..preference import load_preference

    pref = load_preference(cfg.preference)
    rec["preference"] = pref[2]
    return pref


def dpo_stage(cfg, tracker, rec: dict, adapter, stage_key, pref) -> tuple[str, str, str | None]:
    pairs, held, info = pref
    t = time.time()
    stage = StageDir(cfg.cache_dir, "dpo", {"model": model_key(rec["model_path"]), "sft": stage_key,
                                            "dpo": OmegaConf.to_container(cfg.dpo, resolve=True),
                                            "preference": info["hash"], "heldout": info["heldout_hash"]})
    with stage.lock():
        if stage.done:
            res = stage.meta()["result"]
            log.info(f"dpo: reusing {stage.path}")
        else:
            from ..dpo import run_dpo

            stage.begin()
            off = int((rec.get("train") or {}).get("steps") or 0)  # W&B steps keep rising after SFT's
            res = run_dpo(rec["model_path"], adapter, pairs, held, cfg.dpo, stage.path,
                          on_log=lambda d, step: tracker.log(d, step=off + step))
            stage.finish({"result": res})
    rec["dpo"] = {k: v for k, v in res.items() if k != "log_history"} | {"cache": str(stage.path)}
    rec["seconds"]["dpo"] = time.time() - t
    rec["seconds_computed"]["dpo"] = float(res.get("seconds") or rec["seconds"]["dpo"])
    hb, ha = res["heldout_before"], res["heldout_after"]
    tracker.summary({"dpo/steps": res["steps"], "dpo/final_loss": res["final_loss"],
                     "dpo/heldout_margin_before": hb["margin"], "dpo/heldout_margin_after": ha["margin"]})
    return res["adapter"], stage.key, res["model"]

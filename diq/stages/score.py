"""Stage 2: the scores the strategy needs, each computed once and cached (``diq/scoring/``).

Record fields: ``scores`` (per scorer: cache folder, seconds, reused; the validation set's ids and hash),
``decontamination.validation``, ``seconds_computed.score``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ..errors import DiqError
from ..lora import check_targets
from ..models import resolve_model


def score_stage(cfg: DictConfig, out_dir: Path, rec: dict, records: list[dict], needs: list[str], decontam) -> dict:
    if cfg.scoring.influence.get("shard_index") is not None and cfg.stop_after != "score":
        raise DiqError(f"scoring.influence.shard_index={cfg.scoring.influence.shard_index} computes one shard only\n"
                       f"  fix: add stop_after=score to shard runs; a later run without shard_index merges them")
    if not needs:
        return {}
    from ..scoring import compute_scores

    score_model = resolve_model(cfg.scoring.model) if cfg.scoring.get("model") else rec["model_path"]
    check_targets(score_model, [(k, b) for k, b, need in (("train.lora", cfg.train.lora, "influence"),
                                                          ("scoring.less.lora", cfg.scoring.less.lora, "less"))
                                if need in needs or (need == "influence" and "difficulty" in needs)])
    scores, info = compute_scores(needs, records, score_model, cfg, out_dir, decontam=decontam)
    if "validation_decontamination" in info:
        rec.setdefault("decontamination", {})["validation"] = info.pop("validation_decontamination")
    info["scoring_model"] = score_model
    rec["scores"] = info
    rec["seconds_computed"]["score"] = sum(float(v.get("seconds") or 0) for v in info.values() if isinstance(v, dict))
    return scores

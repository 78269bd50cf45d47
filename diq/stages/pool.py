"""Stage 1: the pool, planted samples (experiments/planted.yaml) and decontamination against every scored benchmark.

Record fields: ``pool``, ``n_pool_raw``, ``decontamination``, ``n_pool``, ``pool_hash``."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ..artifacts import write_json
from ..pool import load_pool, pool_hash

log = logging.getLogger(__name__)


def pool_stage(cfg: DictConfig, out_dir: Path, rec: dict) -> tuple[list[dict], dict | None, tuple | None]:
    """Returns (records, planted origins or None, decontamination context for the validation set or None)."""
    records = load_pool(cfg.pool)
    origins = None
    if cfg.pool.get("planted"):  # known in-domain and corrupted samples; their origins are hidden from the strategies
        if cfg.pool.planted.get("kind", "pubmedqa") == "knowledge":  # invented drugs (diq/knowledge.py)
            from ..knowledge import plant as plant_knowledge

            records, origins = plant_knowledge(records, cfg.pool.planted)
        else:
            from ..planted import plant
            from ..scoring.validation import build_validation

            val_ids = {r["id"] for r in build_validation(cfg.scoring.validation, int(cfg.seed), cfg.eval)[0]}
            records, origins = plant(records, cfg.pool.planted, val_ids)
        write_json(out_dir / "planted_origins.json", origins)
    rec.update(pool=cfg.pool.name, n_pool_raw=len(records))
    decontam = None
    if cfg.decontaminate != "off":
        from .. import decontam as dc

        docs, skipped = dc.benchmark_docs(cfg.eval)
        report = dc.check(records, docs, int(cfg.decontam_ngram))
        records = dc.apply(cfg.decontaminate, "pool", records, report)
        decontam = (cfg.decontaminate, docs, int(cfg.decontam_ngram))
        rec["decontamination"] = {"mode": cfg.decontaminate, "ngram": int(cfg.decontam_ngram),
                                  "benchmarks": {k: len(v) for k, v in docs.items()}, "skipped": skipped,
                                  "pool": report.summary()}
    rec.update(n_pool=len(records), pool_hash=pool_hash(records))
    log.info(f"pool {cfg.pool.name}: {len(records)} samples (hash {rec['pool_hash'][:12]}); model {cfg.model.name}")
    return records, origins, decontam

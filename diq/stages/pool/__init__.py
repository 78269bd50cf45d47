"""Stage 1, pool: the pool, planted samples (experiments/planted.yaml, experiments/sensitivity.yaml) and
decontamination against every scored benchmark; then the budget on it (k, from the strategy).

Record section ``pool``: ``pool``, ``n_pool_raw``, ``decontamination``, ``n_pool``, ``pool_hash`` (and
``budget_fraction`` where the strategy sets its own k: the base model, the full pool, the oracle)."""

from __future__ import annotations

import logging

from diq.artifacts import write_json
from diq.config.checks import _int
from diq.stages.base import Checks, RunState, Stage
from diq.stages.pool.load import load_pool, pool_hash

log = logging.getLogger(__name__)


class PoolStage(Stage):
    name = "pool"
    reads = ("plan",)
    writes = ("records", "origins", "decontam", "k")
    section = "pool"

    def check(self, c: Checks) -> None:
        lim = c.cfg.pool.get("limit")
        if lim is not None:
            _int(lim, "pool.limit", 1, fix="the first N records, or null for all")

    def compute(self, state: RunState) -> None:
        cfg, sec = state.cfg, state.rec.stages.pool
        records = load_pool(cfg.pool)
        origins = None
        if cfg.pool.get("planted"):  # known in-domain and corrupted samples; their origins are hidden from strategies
            if cfg.pool.planted.get("kind", "pubmedqa") == "knowledge":  # invented drugs (diq/stages/pool/knowledge.py)
                from diq.stages.pool.knowledge import plant as plant_knowledge

                records, origins = plant_knowledge(records, cfg.pool.planted)
            else:
                from diq.stages.pool.planted import plant

                val_ids = {r["id"] for r in state.plan.validation(cfg.scoring.validation, int(cfg.seed))[0]}
                records, origins = plant(records, cfg.pool.planted, val_ids)
            write_json(state.out_dir / "planted_origins.json", origins)
        sec.update(pool=cfg.pool.name, n_pool_raw=len(records))
        decontam = None
        if cfg.decontaminate != "off":
            from diq.tasks import decontam as dc

            docs, skipped = dc.benchmark_docs(cfg.eval, state.plan)
            report = dc.check(records, docs, int(cfg.decontam_ngram))
            records = dc.apply(cfg.decontaminate, "pool", records, report)
            decontam = (cfg.decontaminate, docs, int(cfg.decontam_ngram))
            sec.decontamination = {"mode": cfg.decontaminate, "ngram": int(cfg.decontam_ngram),
                                   "benchmarks": {k: len(v) for k, v in docs.items()}, "skipped": skipped,
                                   "pool": report.summary()}
        sec.update(n_pool=len(records), pool_hash=pool_hash(records))
        log.info(f"pool {cfg.pool.name}: {len(records)} samples (hash {sec.pool_hash[:12]}); model {cfg.model.name}")
        state.records, state.origins, state.decontam = records, origins, decontam
        strat = state.strategy  # the budget on this pool, before any scoring (a budget that rounds to 0 stops here)
        if strat.uses_origins:  # the oracle: the planted pool's known answer
            strat.origins = origins
        state.k = strat.k(records, cfg.budget.fraction)
        if not strat.uses_budget:  # the base model (0), the full pool (1), the oracle (its in-domain share)
            state.rec.budget_fraction = state.k / len(records)
        return None

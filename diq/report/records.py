"""Finding, reading and de-duplicating run records (newest complete record per configuration and seed)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

from diq.record import RunRecord

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "experiments" / "paper_numbers.json"
PAPER_MODEL = "llama31_8b_instruct"
PAPER_POOL = "medical_o1"
COLUMNS = ["table", "strategy", "budget", "cell", "status", "n_seeds", "seeds", "AvgS", "AvgS_std", "AvgC", "AvgC_std",
           "AvgA", "AvgA_std", "n_S", "n_C", "paper_AvgS", "paper_AvgC", "paper_AvgA", "delta_AvgA", "model", "pool",
           "n_pool", "benchmarks", "eval_limit", "difficulty", "validation", "limited", "score_s", "train_s", "eval_s",
           "device", "select_cost_vs_full", "total_cost_vs_full", "error", "records", "set_aside_duplicates",
           "set_aside_failed", "set_aside_unreadable", "in_domain_precision", "in_domain_precision_std", "in_domain_base_rate",
           "corrupted_share", "corrupted_share_std", "corrupted_base_rate", "AvgA_ci95", "AvgA_ci_low", "AvgA_ci_high",
           "reference", "delta_ref", "delta_ref_ci_low", "delta_ref_ci_high", "mcnemar_p", "delta_base",
           "delta_base_ci_low", "delta_base_ci_high", "mdd", "run_dirs", "commits", "wandb_runs", "command", "per_item", "scores_files"]


def budget_name(f, base_model: bool = False) -> str:
    if base_model:
        return "base"
    return "full" if float(f) >= 1.0 else f"p{float(f) * 100:g}"


# --------------------------------------------------------------------------------------------- records
def _is_record(p: Path) -> bool:
    """``record.json`` / ``record.failed.json`` in a run folder, or a committed copy named ``<run>.record.json`` /
    ``<run>.failed.record.json`` (results/records/<experiment>/)."""
    return p.name in ("record.json", "record.failed.json") or p.name.endswith(".record.json")


def find_records(experiment: str | None, paths: list[str]) -> list[Path]:
    """An experiment's records under ./runs/<id>, ./multirun/<id> and the committed results/records/<id> (of the
    current folder and of the repository), plus any ``paths`` (files, folders or globs)."""
    found: list[Path] = []
    if experiment:
        for top in {Path("."), ROOT}:
            for base in (top / "runs" / experiment, top / "multirun" / experiment,
                         top / "results" / "records" / experiment):
                found += [x for x in base.rglob("*.json") if _is_record(x)]
    for p in paths:
        for g in glob.glob(p):
            q = Path(g)
            found += [q] if q.is_file() and _is_record(q) else [x for x in q.rglob("*.json") if _is_record(x)]
    return sorted({p.resolve() for p in found})


def load_records(paths: list[Path]) -> tuple[list[RunRecord], list[str]]:
    """Typed records (each with ``path`` and ``mtime``); unreadable files are named and skipped, never fatal."""
    recs, bad = [], []
    for p in paths:
        try:
            r = json.loads(p.read_text())
            if not isinstance(r, dict) or "strategy" not in r:
                raise ValueError("not a diq record")
        except (OSError, ValueError) as e:
            bad.append(f"{p}: {type(e).__name__}: {str(e)[:120]}")
            continue
        practice = p.parent / "practice.json"  # written by diq practice beside the record
        if practice.exists():
            try:
                r["expert_practice"] = {**(r.get("expert_practice") or {}), **json.loads(practice.read_text())}
            except ValueError as e:
                bad.append(f"{practice}: {type(e).__name__}: {str(e)[:120]} (the record was read without it)")
        recs.append(RunRecord.from_json({**r, "_path": str(p), "_mtime": p.stat().st_mtime}))
    return recs, bad


def _strip_seeds(x):
    if isinstance(x, dict):
        return {k: _strip_seeds(v) for k, v in x.items() if k != "seed"}
    if isinstance(x, list):
        return [_strip_seeds(v) for v in x]
    return x


def cell_key(r: RunRecord | dict) -> str:
    """The record's configuration without its seed (``cell_hash``, written by diq run; rebuilt for older records)."""
    r = RunRecord.of(r)
    if r.cell_hash:
        return r.cell_hash
    from diq.artifacts import sha256_obj

    c = r.config
    if not c:  # failed before its config was resolved (e.g. config validation): its command-line cell names it
        return sha256_obj({"cell": r.cell, "strategy": r.strategy, "model": r.model,
                           "experiment": r.experiment, "budget": r.budget_fraction})
    return sha256_obj(_strip_seeds({k: c.get(k) for k in ("pool", "model", "selection", "budget", "train", "eval",
                                                          "scoring")}))


def dedupe(records: list[RunRecord | dict]) -> tuple[list[RunRecord], int, int]:
    """Newest complete record per (configuration, seed); failed records only where nothing completed.
    Returns (kept, duplicates set aside, failed records set aside)."""
    by: dict[tuple, list[RunRecord]] = {}
    for r in map(RunRecord.of, records):
        by.setdefault((cell_key(r), r.seed), []).append(r)
    kept, dups, failed_aside = [], 0, 0
    for rs in by.values():
        rs = sorted(rs, key=lambda r: (r.finished_at or "", r.mtime), reverse=True)
        done = [r for r in rs if r.complete]
        if done:
            kept.append(done[0])
            dups += len(done) - 1
            failed_aside += len(rs) - len(done)
        else:
            kept.append(rs[0])
            failed_aside += len(rs) - 1
    return kept, dups, failed_aside

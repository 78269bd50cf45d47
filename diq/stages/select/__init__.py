"""Stage 3: the strategy picks k ids; the run folder gets ``selected_ids.json``, ``scores.parquet`` (every score,
quadrant, selected, rank) and, for quadrant strategies, ``quadrants.png``.

Record section ``select``: ``n_selected``, ``selected_ids_path``, ``selected_ids_sha256``, ``selection_hash``,
``selection_info``, ``planted`` (planted pools), ``scores_file``, ``plots``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from diq.artifacts import ids_hash, sha256_file, write_json
from diq.errors import DiqError
from diq.record import RunRecord
from diq.stages.base import Checks, RunState, Stage
from diq.stages.score.result import Scores
from diq.stages.select.strategies import Selection, Strategy

log = logging.getLogger(__name__)


def scores_frame(records: list[dict], scores: Scores, selected: list[str], info: dict):
    """Per-sample scores of this run: id, every column the scorers gave (``Score.column``: e.g. influence's ``dot``),
    quadrant (where DIQ thresholds exist), selected."""
    import pandas as pd

    df = pd.DataFrame({"id": [r["id"] for r in records]})
    for column, arr in scores.columns.items():
        df[column] = np.asarray(arr, dtype=float)
    if "difficulty_threshold" in info and "influence" in scores and "difficulty" in scores:
        from diq.stages.select.quadrants import QUADRANTS, assign

        q, _, _ = assign(np.asarray(scores["difficulty"], float), np.asarray(scores["influence"], float),
                         float(info["tau_d"]))
        df["quadrant"] = np.asarray(QUADRANTS)[q]
    rank = {i: n for n, i in enumerate(selected)}
    df["selected"] = df["id"].map(lambda i: i in rank)
    df["selection_rank"] = df["id"].map(lambda i: rank.get(i, -1))
    return df


class SelectStage(Stage):
    """The strategy picks k ids (not cached: it is fast, and its inputs are)."""

    name = "select"
    reads = ("records", "scores")
    writes = ("selection",)
    section = "select"

    def check(self, c: Checks) -> None:
        """The budget (the strategy checks its own keys when it is built)."""
        if c.strategy.uses_budget:
            f = c.cfg.budget.fraction
            if isinstance(f, bool) or not isinstance(f, (int, float)):
                raise DiqError(f"budget.fraction={f!r} is not a number\n  fix: use a fraction in (0, 1], e.g. "
                               f"budget=p1 (0.01) or budget.fraction=0.05")

    def runs(self, state: RunState) -> bool:
        return state.strategy.trains

    def skipped(self, state: RunState) -> None:  # the base model's row: nothing selected
        state.rec.stages.select.update(n_selected=0, selection_hash=None)

    def compute(self, state: RunState) -> None:
        state.selection = select(state.cfg, state.out_dir, state.tracker, state.rec, state.records, state.scores,
                                 state.strategy, state.k, state.origins)


def select(cfg, out_dir: Path, tracker, rec: RunRecord, records: list[dict], scores: Scores, strat: Strategy, k: int,
           origins: dict | None = None) -> Selection:
    sec = rec.stages.select
    sel = strat.select(records, scores, k)
    if len(sel.ids) != k or len(set(sel.ids)) != k:
        raise RuntimeError(f"strategy {strat.name} returned {len(sel.ids)} ids ({len(set(sel.ids))} unique), "
                           f"expected {k}")
    ids_file = write_json(out_dir / "selected_ids.json", sel.ids)
    sec.update(n_selected=len(sel.ids), selected_ids_path=str(ids_file), selected_ids_sha256=sha256_file(ids_file),
               selection_hash=ids_hash(sel.ids), selection_info=sel.info)
    if origins is not None:
        from diq.stages.pool.planted import measure

        kept = {r["id"] for r in records}  # after decontamination
        sec.planted = measure(sel.ids, {i: o for i, o in origins.items() if i in kept})
        tracker.summary({f"planted/{k_}": v for k_, v in sec.planted.items() if isinstance(v, (int, float))})
    sc = scores_frame(records, scores, sel.ids, sel.info)
    sc_path = out_dir / "scores.parquet"
    sc.to_parquet(sc_path.with_suffix(".parquet.tmp"), index=False)
    os.replace(sc_path.with_suffix(".parquet.tmp"), sc_path)
    sec.scores_file = str(sc_path)
    tracker.artifact(f"selection-{sec.selection_hash[:12]}", "selection", [ids_file, sc_path])
    log.info(f"selected {len(sel.ids)} of {len(records)} with {strat.name} (hash {sec.selection_hash[:12]})")
    tracker.summary({"n_selected": len(sel.ids), "selection_hash": sec.selection_hash,
                     **{f"selection/{k_}": v for k_, v in sel.info.items() if isinstance(v, (int, float, str))}})
    if "influence" in scores and "difficulty" in scores and "difficulty_threshold" in sel.info:
        _plot(cfg, out_dir, tracker, sec, records, scores, sel, k)
    return sel


def _plot(cfg, out_dir, tracker, sec, records, scores, sel, k) -> None:
    from diq.stages.select.quadrants import scatter

    chosen = set(sel.ids)
    png = scatter(out_dir / "quadrants.png", np.asarray(scores["difficulty"]), np.asarray(scores["influence"]),
                  np.array([r["id"] in chosen for r in records]), sel.info,
                  f"{cfg.experiment_name}: {cfg.selection.name} k={k} of {len(records)}")
    sec.plots = [png]
    tracker.image("selection/quadrants", png)
    tracker.summary({f"selection/{q}_size": v for q, v in sel.info["quadrant_sizes"].items()})
    tracker.summary({"selection/difficulty_threshold": sel.info["difficulty_threshold"],
                     "selection/influence_threshold": sel.info["influence_threshold"]})

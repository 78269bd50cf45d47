"""Selection strategies: from a pool (and, for most, cached per-sample scores) to an ordered list of ids.

Each strategy declares the scores it needs; the pipeline computes (or loads from the cache) exactly those.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from omegaconf import DictConfig

from .errors import DiqError


@dataclass
class Selection:
    ids: list[str]
    info: dict = field(default_factory=dict)


@dataclass
class Strategy:
    fn: Callable[..., Selection]
    needs: Callable[[DictConfig], list[str]]  # score names, e.g. ["influence", "difficulty"]


STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str, needs=lambda cfg: []):
    def deco(fn):
        STRATEGIES[name] = Strategy(fn, needs)
        return fn
    return deco


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise DiqError(f"unknown selection strategy {name!r}\n  fix: choose one of {', '.join(sorted(STRATEGIES))} "
                       f"(selection=<name>)")
    return STRATEGIES[name]


def check_finite(name: str, ids: list[str], values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        where = [ids[i] for i in np.flatnonzero(bad)[:10]]
        raise DiqError(f"{int(bad.sum())} {name} score(s) are NaN or inf, e.g. for samples {where}\n"
                       f"  fix: inspect those samples (empty or truncated responses?) or clear the score cache entry")


def top_k(ids: list[str], primary: np.ndarray, k: int, secondary: np.ndarray | None = None) -> list[str]:
    """Descending by primary, then secondary (descending), then id (ascending): a total, deterministic order."""
    sec = secondary if secondary is not None else np.zeros(len(ids))
    order = sorted(range(len(ids)), key=lambda i: (-primary[i], -sec[i], ids[i]))
    return [ids[i] for i in order[:k]]


@strategy("full")
def select_full(records, scores, k, cfg) -> Selection:
    return Selection([r["id"] for r in records], {"note": "all samples, pool order"})


@strategy("none")
def select_none(records, scores, k, cfg) -> Selection:
    return Selection([], {"note": "the base model: nothing selected, nothing trained"})


@strategy("random")
def select_random(records, scores, k, cfg) -> Selection:
    ids = [r["id"] for r in records]
    rng = random.Random(int(cfg.seed))
    return Selection(rng.sample(ids, k), {"seed": int(cfg.seed)})


# --------------------------------------------------------------------------- score-based strategies
@strategy("diq", needs=lambda cfg: ["influence", "difficulty"])
def select_diq(records, scores, k, cfg) -> Selection:
    return _quadrant_select(records, scores, k, cfg, tuple(cfg.get("quadrants") or ("Q1", "Q2", "Q3", "Q4")))


@strategy("quadrant", needs=lambda cfg: ["influence", "difficulty"])
def select_quadrant(records, scores, k, cfg) -> Selection:
    """The single-quadrant ablation: only ``cfg.quadrant`` (Q1..Q4), ordered as inside DIQ. If the quadrant
    holds fewer than k samples, the run fails (it cannot honour the budget) unless ``fill: true``."""
    q = str(cfg.quadrant).upper()
    if q not in ("Q1", "Q2", "Q3", "Q4"):
        raise DiqError(f"selection.quadrant={cfg.quadrant!r}; choose one of Q1, Q2, Q3, Q4")
    order = (q,) + tuple(x for x in ("Q1", "Q2", "Q3", "Q4") if x != q) if cfg.get("fill") else (q,)
    sel = _quadrant_select(records, scores, k, cfg, order)
    if sel.info["short_by"]:
        raise DiqError(f"quadrant {q} holds {sel.info['quadrant_sizes'][q]} samples, fewer than the budget k={k}\n"
                       f"  fix: lower the budget, or set selection.fill=true to top up from the other quadrants")
    return sel


def _quadrant_select(records, scores, k, cfg, order) -> Selection:
    from . import quadrants

    ids = [r["id"] for r in records]
    d, inf = np.asarray(scores["difficulty"], float), np.asarray(scores["influence"], float)
    check_finite("difficulty", ids, d)
    check_finite("influence", ids, inf)
    chosen, info = quadrants.select(ids, d, inf, k, float(cfg.tau_d), order)
    return Selection(chosen, info)


@strategy("influence", needs=lambda cfg: ["influence"])
def select_influence(records, scores, k, cfg) -> Selection:
    ids = [r["id"] for r in records]
    v = np.asarray(scores["influence"], float)
    check_finite("influence", ids, v)
    return Selection(top_k(ids, v, k), {"order": "Dot descending, then id"})


@strategy("difficulty", needs=lambda cfg: ["difficulty"])
def select_difficulty(records, scores, k, cfg) -> Selection:
    ids = [r["id"] for r in records]
    v = np.asarray(scores["difficulty"], float)
    check_finite("difficulty", ids, v)
    return Selection(top_k(ids, v, k), {"order": "difficulty descending, then id", "perspective": cfg.perspective})


def _single(name, desc):
    @strategy(name, needs=lambda cfg: [name])
    def _select(records, scores, k, cfg) -> Selection:
        ids = [r["id"] for r in records]
        v = np.asarray(scores[name], float)
        check_finite(name, ids, v)
        return Selection(top_k(ids, v, k), {"order": desc})
    return _select


_single("less", "LESS score descending (cosine, mean per task, max over tasks), then id")
_single("similarity", "embedding cosine to the validation set descending (mean per task, max over tasks), then id")
_single("length", "reasoning+response length in tokens descending, then id")


@strategy("ifd", needs=lambda cfg: ["ifd"])
def select_ifd(records, scores, k, cfg) -> Selection:
    """Cherry LLM: drop IFD > 1 (the answer is easier without the instruction), then the highest IFD."""
    ids = [r["id"] for r in records]
    v = np.asarray(scores["ifd"], float)
    check_finite("ifd", ids, v)
    keep = v <= float(cfg.get("max_ifd", 1.0))
    if keep.sum() < k:
        raise DiqError(f"only {int(keep.sum())} samples have IFD ≤ {cfg.get('max_ifd', 1.0)}, fewer than k={k}\n"
                       f"  fix: lower the budget or raise selection.max_ifd")
    kept = [i for i in range(len(ids)) if keep[i]]
    chosen = top_k([ids[i] for i in kept], v[kept], k)
    return Selection(chosen, {"n_ifd_above_max": int((~keep).sum())})

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


@strategy("random")
def select_random(records, scores, k, cfg) -> Selection:
    ids = [r["id"] for r in records]
    rng = random.Random(int(cfg.seed))
    return Selection(rng.sample(ids, k), {"seed": int(cfg.seed)})

"""Selection strategies: from a pool (and, for most, cached per-sample scores) to an ordered list of ids.

Each ``conf/selection/<name>.yaml`` names its class with ``_target_`` and the scores it needs with ``needs``; the
pipeline computes (or loads from the cache) exactly those, then ``build(cfg.selection).select(records, scores, k)``.
A strategy's settings are its constructor's arguments, so a mistyped key fails when the strategy is built, before any
scoring. Your own strategy: subclass ``Strategy`` and point ``selection._target_`` at it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from omegaconf import DictConfig, OmegaConf

from diq import CONF
from diq.config.checks import _num
from diq.errors import DiqError
from diq.stages.select.budget import budget_k
from diq.stages.select.quadrants import QUADRANTS


@dataclass
class Selection:
    ids: list[str]
    info: dict = field(default_factory=dict)


class Strategy:
    """A named strategy. ``needs``: the score names it reads (``scores[name]``), computed by ``scoring.<name>``.

    What a strategy does is stated here, not inferred from its name: ``trains`` (False: a row of the untuned model,
    nothing selected or trained), ``uses_budget`` (False: k does not come from ``budget.fraction``), ``uses_origins``
    (reads a planted pool's hidden origins) and ``k`` (how many samples it takes)."""

    trains = True
    uses_budget = True
    uses_origins = False

    def __init__(self, name: str, needs: list[str] | tuple = ()):
        self.name, self.needs = str(name), [str(n) for n in needs]

    def k(self, records: list[dict], fraction=None) -> int:
        """How many samples this strategy selects from ``records``: round(fraction · |pool|) (docs/method.md)."""
        return budget_k(fraction, len(records))

    def select(self, records: list[dict], scores: dict, k: int) -> Selection:
        raise NotImplementedError

    def _values(self, records, scores, name) -> tuple[list[str], np.ndarray]:
        ids = [r["id"] for r in records]
        if name not in scores:
            raise DiqError(f"selection {self.name!r} reads score {name!r}, which was not computed\n"
                           f"  fix: add {name} to selection.needs (it has {self.needs})")
        v = np.asarray(scores[name], float)
        check_finite(name, ids, v)
        return ids, v


def build(cfg: DictConfig) -> Strategy:
    """The strategy that ``cfg._target_`` names (``cfg`` = the run's ``selection`` block), built by ``instantiate``."""
    from hydra.utils import instantiate

    if not cfg.get("_target_"):  # a config saved before strategies were named by `_target_` (an older record)

        path = CONF / "selection" / f"{cfg.get('name')}.yaml"
        if path.exists():
            conf = OmegaConf.load(path)
            cfg = OmegaConf.merge({k: conf[k] for k in ("_target_", "needs")}, cfg)
    if not cfg.get("_target_"):
        raise DiqError(f"selection {cfg.get('name')!r} has no _target_\n  fix: name its class in "
                       f"conf/selection/<name>.yaml, e.g. _target_: diq.stages.select.strategies.TopScore (see diq/stages/select/strategies.py)")
    try:
        strat = instantiate(cfg, _convert_="all")
    except Exception as e:  # noqa: BLE001 - Hydra wraps the constructor's TypeError; say which key is wrong
        cause = e.__cause__ or e
        if isinstance(cause, DiqError):  # the constructor checked its own arguments and named the key
            raise cause from None
        raise DiqError(f"selection {cfg.get('name')!r} ({cfg._target_}): {cause}\n  fix: the keys of "
                       f"conf/selection/{cfg.get('name')}.yaml are the arguments of {cfg._target_}; check the "
                       f"spelling of selection.<key> overrides") from None
    if not isinstance(strat, Strategy):
        raise DiqError(f"selection._target_={cfg._target_} built a {type(strat).__name__}, not a diq.stages.select.strategies.Strategy")
    return strat


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


class Full(Strategy):
    """Every sample, pool order (the ``full`` row)."""

    uses_budget = False

    def k(self, records, fraction=None):
        return len(records)

    def select(self, records, scores, k):
        return Selection([r["id"] for r in records], {"note": "all samples, pool order"})


class BaseModel(Strategy):
    """The untuned base model as a row: nothing selected, nothing trained. ``perspective`` and ``quadrant`` are
    accepted (and ignored) so that a sweep over another strategy's keys can include the base row."""

    trains = False
    uses_budget = False

    def __init__(self, name, needs=(), perspective=None, quadrant=None):
        super().__init__(name, needs)

    def k(self, records, fraction=None):
        return 0

    def select(self, records, scores, k):
        return Selection([], {"note": "the base model: nothing selected, nothing trained"})


class Oracle(Strategy):
    """The known answer of a planted pool (``pool=knowledge``, ``pool=planted``): exactly its in-domain samples,
    read from the origins hidden from every other strategy. The budget does not apply: k = their count."""

    uses_budget = False
    uses_origins = True

    def __init__(self, name, needs=()):
        super().__init__(name, needs)
        self.origins: dict[str, str] | None = None

    def k(self, records: list[dict], fraction=None) -> int:
        if self.origins is None:
            raise DiqError("selection=oracle reads a planted pool's hidden origins, and this pool has none\n"
                           "  fix: use it with pool=knowledge (experiment=sensitivity) or pool=planted")
        return sum(self.origins.get(r["id"]) == "in_domain" for r in records)

    def select(self, records, scores, k):
        ids = [r["id"] for r in records if (self.origins or {}).get(r["id"]) == "in_domain"]
        return Selection(ids[:k], {"oracle": "in_domain samples of the planted pool"})


class Random(Strategy):
    def __init__(self, name, needs=(), seed: int = 0):
        super().__init__(name, needs)
        self.seed = int(seed)

    def select(self, records, scores, k):
        ids = [r["id"] for r in records]
        return Selection(random.Random(self.seed).sample(ids, k), {"seed": self.seed})


class Quadrants(Strategy):
    """DIQ: quadrants of difficulty (τ_d percentile of D) × influence (median of Dot), taken in ``quadrants`` order
    (Q1 → Q2 → Q3 → Q4); inside a quadrant by its own order (diq/stages/select/quadrants.py)."""

    def __init__(self, name, needs=("influence", "difficulty"), tau_d: float = 50, perspective=None,
                 quadrants=QUADRANTS):
        super().__init__(name, needs)
        _num(tau_d, "selection.tau_d", 0, 100, "a percentile of D in [0, 100] (50 = the median)")
        if quadrants is not None:
            bad = [q for q in quadrants if q not in QUADRANTS]
            if bad or not len(quadrants):
                raise DiqError(f"selection.quadrants={list(quadrants)}: unknown {bad or 'empty list'}\n"
                               f"  fix: a non-empty ordered list of {', '.join(QUADRANTS)}")
            if len(set(quadrants)) != len(quadrants):
                raise DiqError(f"selection.quadrants={list(quadrants)} repeats a quadrant\n"
                               f"  fix: each of {', '.join(QUADRANTS)} at most once, in the order to fill the budget")
        self.tau_d, self.perspective, self.order = float(tau_d), perspective, tuple(quadrants or QUADRANTS)

    def select(self, records, scores, k):
        from diq.stages.select import quadrants

        ids, d = self._values(records, scores, "difficulty")
        _, inf = self._values(records, scores, "influence")
        chosen, info = quadrants.select(ids, d, inf, k, self.tau_d, self.order)
        if info["short_by"]:  # the scores are cached: a rerun with the fix recomputes nothing
            raise self._short_error(info, k)
        return Selection(chosen, info)

    def _short_error(self, info: dict, k: int) -> DiqError:
        sizes = info["quadrant_sizes"]
        held = sum(sizes[q] for q in self.order)
        return DiqError(f"selection.quadrants={list(self.order)} hold {held} samples "
                        f"({', '.join(f'{q}: {sizes[q]}' for q in self.order)}), fewer than the budget k={k}\n"
                        f"  fix: list more quadrants (selection.quadrants=[Q1,Q2,Q3,Q4] fills from the next ones) or "
                        f"lower the budget to at most {held} samples (budget.fraction <= "
                        f"{held / max(1, sum(sizes.values())):.3f}); the scores are cached, so the rerun only selects")


class SingleQuadrant(Quadrants):
    """The single-quadrant ablation: only ``quadrant``, ordered as inside DIQ. If the quadrant holds fewer than k
    samples, the run fails (it cannot honour the budget) unless ``fill: true`` tops up from the others."""

    def __init__(self, name, needs=("influence", "difficulty"), quadrant: str = "Q1", tau_d: float = 50,
                 perspective=None, fill: bool = False):
        q = str(quadrant).upper()
        if q not in QUADRANTS:
            raise DiqError(f"selection.quadrant={quadrant!r}; choose one of Q1, Q2, Q3, Q4")
        order = (q,) + tuple(x for x in QUADRANTS if x != q) if fill else (q,)
        super().__init__(name, needs, tau_d, perspective, order)
        self.quadrant = q

    def _short_error(self, info: dict, k: int) -> DiqError:
        return DiqError(f"quadrant {self.quadrant} holds {info['quadrant_sizes'][self.quadrant]} samples, fewer "
                        f"than the budget k={k}\n  fix: lower the budget, or set selection.fill=true to top up "
                        f"from the other quadrants")


ORDERS = {"influence": "Dot descending, then id",
          "difficulty": "difficulty descending, then id",
          "less": "LESS score descending (cosine, mean per task, max over tasks), then id",
          "similarity": "embedding cosine to the validation set descending (mean per task, max over tasks), then id",
          "length": "reasoning+response length in tokens descending, then id"}


class TopScore(Strategy):
    """Top-k by one score (``score``, default: the strategy's only need), descending, ties by id."""

    def __init__(self, name, needs=(), score: str | None = None, perspective=None):
        super().__init__(name, needs)
        self.score = score or (self.needs[0] if len(self.needs) == 1 else None)
        if self.score is None:
            raise DiqError(f"selection {name!r}: TopScore needs `score` (or exactly one entry in `needs`)")
        self.perspective = perspective

    def select(self, records, scores, k):
        ids, v = self._values(records, scores, self.score)
        info = {"order": ORDERS.get(self.score, f"{self.score} descending, then id")}
        if self.score == "difficulty":
            info["perspective"] = self.perspective
        return Selection(top_k(ids, v, k), info)


class IFD(Strategy):
    """Cherry LLM: drop IFD > ``max_ifd`` (the answer is easier without the instruction), then the highest IFD."""

    def __init__(self, name, needs=("ifd",), max_ifd: float = 1.0):
        super().__init__(name, needs)
        self.max_ifd = float(max_ifd)

    def select(self, records, scores, k):
        ids, v = self._values(records, scores, "ifd")
        keep = v <= self.max_ifd
        if keep.sum() < k:
            raise DiqError(f"only {int(keep.sum())} samples have IFD ≤ {self.max_ifd:g}, fewer than k={k}\n"
                           f"  fix: lower the budget or raise selection.max_ifd")
        kept = [i for i in range(len(ids)) if keep[i]]
        return Selection(top_k([ids[i] for i in kept], v[kept], k), {"n_ifd_above_max": int((~keep).sum())})


def strategy_names() -> list[str]:

    return sorted(p.stem for p in (CONF / "selection").glob("*.yaml"))


def load_selection(name: str, **overrides) -> Strategy:
    """Build ``conf/selection/<name>.yaml`` outside a run (tests, notebooks); ``${seed}`` resolves to ``seed``."""

    path = CONF / "selection" / f"{name}.yaml"
    if not path.exists():
        raise DiqError(f"unknown selection strategy {name!r}\n  fix: choose one of {', '.join(strategy_names())} "
                       f"(selection=<name>)")
    seed = overrides.pop("seed", 0)
    cfg = OmegaConf.merge(OmegaConf.create({"seed": seed}), {"selection": OmegaConf.load(path)},
                          {"selection": overrides})
    return build(cfg.selection)

"""The stage interface every stage implements, and the state one run hands from each stage to the next.

A stage declares its ``name`` (as in ``stop_after`` and ``record.seconds``), the ``RunState`` fields it ``reads``
and ``writes``, the record ``section`` it fills (``RunRecord.stages.<section>``), and implements ``compute``.
``check`` validates the stage's own config block from the config alone (ranges, dtypes, devices: before any data
is read; ``diq/run/validate.py`` calls every stage's and keeps only the rules across groups); ``prepare`` holds what
can be checked before any stage computes once the run has started; ``runs`` says whether the stage applies to this
run (the base model's row does not select or train; DPO runs only with ``dpo.enabled``). A stage whose output is
one cached entry builds its ``StageDir`` from its ``key`` and fills it with ``StageDir.get_or_compute``.
``diq.run.pipeline`` walks the stages in order, times each (as run and as computed) and stops after ``stop_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig

from diq.record import RunRecord


@dataclass
class RunState:
    """One run's inputs and what its stages have produced so far (in memory; the record holds what is written)."""
    cfg: DictConfig
    out_dir: Path
    tracker: Any
    rec: RunRecord
    strategy: Any = None  # diq.stages.select.strategies.Strategy, built before any compute
    plan: Any = None  # diq.tasks.plan.EvalPlan: the evaluation resolved once (the evaluate stage's prepare)
    preference: tuple | None = None  # (pairs, held-out, info) when DPO runs
    records: list[dict] | None = None  # the pool after decontamination
    origins: dict | None = None  # a planted pool's hidden origins (only the oracle reads them)
    decontam: tuple | None = None  # (mode, benchmark docs, n-gram) for the validation set
    k: int = 0  # how many samples the strategy takes
    scores: Any = None  # diq.stages.score.result.Scores: name → array, with parquet columns and record info
    selection: Any = None  # diq.stages.select.strategies.Selection
    adapter: str | None = None  # the fine-tuned adapter to evaluate (None: the base model)
    stage_key: str | None = None  # the cache key of the stage that made it
    eval_model: str | None = None  # a full model to evaluate instead of the run's (DPO's stack mode)

    @property
    def model_path(self) -> str:
        return self.rec.model_path


@dataclass(frozen=True)
class Checks:
    """What a stage's config check may depend on besides its own block: the strategy (its needs, whether it trains),
    whether ``stop_after`` reaches a stage, and ``here`` (False: a sweep's submitting host, which is not where the
    cells run, so device presence is not checked)."""

    cfg: DictConfig
    strategy: Any
    stop_after: str
    stages: tuple[str, ...]
    here: bool = True

    @property
    def needs(self) -> set[str]:
        return set(self.strategy.needs)

    def reaches(self, stage: str) -> bool:
        return self.stages.index(self.stop_after) >= self.stages.index(stage)


class Stage:
    """One stage of a run. Subclasses set the class attributes and implement ``compute``."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    section: ClassVar[str]

    def check(self, c: Checks) -> None:
        """The stage's config block, from the config alone: every key it reads, whether or not the stage runs (a
        sweep would reach it); device presence only where the work happens. Raises ``DiqError`` naming key and fix."""

    def prepare(self, state: RunState) -> None:
        """Checks before any stage computes (every stage's, whether or not ``stop_after`` cuts it)."""

    def runs(self, state: RunState) -> bool:
        return True

    def skipped(self, state: RunState) -> None:
        """What the record says when ``runs`` is False (the base model's row: nothing selected)."""

    def key(self, state: RunState) -> dict | None:
        """The cache key material of this stage's ``StageDir`` (None: it is computed every run, or per part)."""
        return None

    def compute(self, state: RunState) -> float | None:
        """Fill the stage's record section and the ``RunState`` fields it writes. Returns the seconds the work took
        when it was computed (a reused cache entry: its first run's), or None for the wall time of this call."""
        raise NotImplementedError

    def check_inputs(self, state: RunState) -> None:
        missing = [r for r in self.reads if getattr(state, r) is None]
        if missing:
            raise RuntimeError(f"stage {self.name} reads {missing}, which no earlier stage wrote")

"""The run record, typed: who ran what (``RunRecord``) and one section per stage (``RunRecord.stages``).

``record.json`` (``record.failed.json`` for a run that stopped) is its JSON form, one flat object as it has been
since the first records, so every committed record still reads: :meth:`RunRecord.to_json` writes each section's
fields at the top level and :meth:`RunRecord.from_json` reads them back into their sections. A key this version
does not know is kept (``extra``) and written back unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

STAGE_NAMES = ("pool", "score", "select", "train", "dpo", "eval")  # the order a run computes them


class _Fields:
    """A dataclass that remembers which fields were set after construction: only those are written (a field set to
    None is written as null, one never set is left out), so the JSON says what a run knew, not the defaults."""

    def __post_init__(self):
        object.__setattr__(self, "_set", [])

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        done = self.__dict__.get("_set")
        if done is not None and name not in done:
            done.append(name)

    def update(self, **values) -> None:
        for k, v in values.items():
            if k not in self.__dataclass_fields__:
                raise AttributeError(f"{type(self).__name__} has no field {k!r}")
            setattr(self, k, v)

    def unset(self, name: str) -> None:
        """Leave ``name`` out of the JSON again (set back to its default)."""
        f = self.__dataclass_fields__[name]
        object.__setattr__(self, name, f.default_factory() if f.default is dataclasses.MISSING else f.default)
        if name in self._set:
            self._set.remove(name)

    def written(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if f.name in self._set]


@dataclass
class PoolSection(_Fields):
    """The pool as selected from: its name, size before and after decontamination, and its content hash."""
    pool: str | None = None
    n_pool_raw: int | None = None
    decontamination: dict | None = None  # mode, n-gram, benchmarks, skipped, pool (and validation: the score stage)
    n_pool: int | None = None
    pool_hash: str | None = None


@dataclass
class ScoreSection(_Fields):
    """Per scorer: cache folder, seconds, reused; the validation set's ids and hash; the scoring model."""
    scores: dict | None = None


@dataclass
class SelectSection(_Fields):
    n_selected: int | None = None
    selected_ids_path: str | None = None
    selected_ids_sha256: str | None = None
    selection_hash: str | None = None
    selection_info: dict | None = None
    planted: dict | None = None  # a planted pool: precision and shares of what was selected
    scores_file: str | None = None
    plots: list | None = None


@dataclass
class TrainSection(_Fields):
    train: dict | None = None  # steps, losses, adapter, cache


@dataclass
class DpoSection(_Fields):
    preference: dict | None = None  # the pairs (read and checked before any compute)
    dpo: dict | None = None


@dataclass
class EvalSection(_Fields):
    eval_plan: dict | None = None  # task → category, source (before any compute)
    eval: dict | None = None
    metrics: dict | None = None
    averages: dict | None = None
    averages_n: dict | None = None
    per_item: str | None = None


@dataclass
class StageSections:
    pool: PoolSection = field(default_factory=PoolSection)
    score: ScoreSection = field(default_factory=ScoreSection)
    select: SelectSection = field(default_factory=SelectSection)
    train: TrainSection = field(default_factory=TrainSection)
    dpo: DpoSection = field(default_factory=DpoSection)
    eval: EvalSection = field(default_factory=EvalSection)


@dataclass
class RunRecord(_Fields):
    """One run: the cell and command that made it, where it ran, its hashes and timings, and its stages' sections."""
    experiment: str | None = None
    strategy: str | None = None
    budget_fraction: float | None = None
    seed: int | None = None
    model: str | None = None
    status: str | None = None  # complete | failed (absent while running)
    error: str | None = None
    stage: str | None = None  # the stage running when a run failed
    traceback: str | None = None
    seconds: dict = field(default_factory=dict)  # per stage, as run (a reused cache entry takes ~0)
    seconds_computed: dict = field(default_factory=dict)  # per stage, as computed (a reused entry: its first run's)
    seconds_total: float | None = None
    output_dir: str | None = None
    wandb: str | None = None
    wandb_fallback: dict | None = None
    cell: dict | None = None
    overrides: list | None = None
    command: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    config_hash: str | None = None
    cell_hash: str | None = None
    git: dict | None = None
    versions: dict | None = None
    config: dict | None = None
    expert_practice: dict | None = None  # diq practice: read from practice.json beside the record
    hub_fixtures: str | None = None
    model_path: str | None = None
    stages: StageSections = field(default_factory=StageSections)
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as read

    # ------------------------------------------------------------------------------------------ JSON form
    def to_json(self) -> dict[str, Any]:
        """The flat JSON object of ``record.json``: every field this run set, each section's at the top level."""
        out = {k: getattr(self, k) for k in self.written() if k not in ("stages", "extra")}
        for name in STAGE_NAMES:
            sec = getattr(self.stages, name)
            out.update({k: getattr(sec, k) for k in sec.written()})
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, d: dict) -> RunRecord:
        """A record from its JSON form (``_path`` and ``_mtime``, where a reader added them, become ``path`` and
        ``mtime``: where it was read from, not part of the record)."""
        rec = cls()
        object.__setattr__(rec, "path", d.get("_path"))
        object.__setattr__(rec, "mtime", d.get("_mtime", 0.0))
        top = {f.name for f in dataclasses.fields(cls)} - {"stages", "extra"}
        where = {f.name: name for name in STAGE_NAMES for f in dataclasses.fields(getattr(rec.stages, name))}
        for k, v in d.items():
            if k in top:
                setattr(rec, k, v)
            elif k in where:
                setattr(getattr(rec.stages, where[k]), k, v)
            elif k not in ("_path", "_mtime"):
                rec.extra[k] = v
        return rec

    @classmethod
    def of(cls, r: RunRecord | dict) -> RunRecord:
        return r if isinstance(r, RunRecord) else cls.from_json(r)

    # ------------------------------------------------------------------------------------------ readers
    @property
    def averages(self) -> dict:
        return self.stages.eval.averages or {}

    @property
    def tasks(self) -> dict:
        """Per benchmark: metric, value, n, category, per-item correctness (the evaluate stage's ``eval.tasks``)."""
        return (self.stages.eval.eval or {}).get("tasks") or {}

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def base_model(self) -> bool:
        """The untuned model's row (``selection=none``: nothing selected, nothing trained)."""
        return self.strategy == "none"

    def cfg(self, name: str) -> dict:
        """The resolved config's block ``name`` (empty when the run failed before its config was resolved)."""
        return (self.config or {}).get(name) or {}


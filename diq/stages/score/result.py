"""What a scorer returns (``Score``) and what the score stage hands on (``Scores``).

A scorer states its own output: the per-sample value that strategies read under the score's name, the column that
value gets in ``scores.parquet``, the by-products it hands on as scores of their own (the influence pass's response
loss), and its metadata for the record. The stage never switches on a score's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Score:
    """One scorer's result. ``value``: per sample, in pool order (None for a partial result, e.g. one shard of the
    influence pass, which a later run merges). ``column``: its name in ``scores.parquet`` (default: the score's name).
    ``extra``: by-products, each a score (and a column) of its own. ``meta``: the record's entry, under ``record_as``
    (default: the score's name)."""

    value: np.ndarray | None
    meta: dict
    column: str | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    record_as: str | None = None

    @classmethod
    def cached(cls, arrays: dict, value: str | None = "value", **kw) -> Score:
        """From a score-cache entry (``diq/stages/score/cache.py``: arrays plus ``_meta``): ``value`` names the array
        that is the score."""
        arrays = dict(arrays)
        meta = arrays.pop("_meta")
        return cls(arrays[value] if value is not None else None, meta, **kw)


class Scores(dict):
    """Score name → per-sample array (what strategies read), with ``columns``: parquet column → array, in the order
    the scorers gave them (what ``scores.parquet`` holds), and ``info``: the record's ``scores`` section."""

    def __init__(self):
        super().__init__()
        self.columns: dict[str, np.ndarray] = {}
        self.info: dict = {}

    def add(self, name: str, score: Score) -> None:
        self.info[score.record_as or name] = score.meta
        if score.value is not None:
            self[name] = score.value
            self.columns[score.column or name] = score.value
        for k, v in score.extra.items():
            self[k] = v
            self.columns[k] = v

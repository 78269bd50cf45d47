"""Paired statistics for a table: a row against a reference row over the same benchmark items.

- ``delta``: AvgA(row) − AvgA(reference), each the mean over its seeds (×100 in the table).
- 95 % CI by a paired bootstrap: each replicate resamples the items of every benchmark (the same items for both
  rows: that is the pairing) and, where a row has several seeds, its seeds; AvgA is recomputed as the mean over
  benchmarks, as in the table.
- McNemar's exact two-sided p for single-seed pairs, over all items of all benchmarks pooled.
- The minimum detectable difference (α = 0.05 two-sided, power 0.8) of AvgA at the table's item counts:
  (z₀.₉₇₅ + z₀.₈) · √(2 · Σ_t p_t(1 − p_t) / n_t) / T, with p_t the reference's accuracy on benchmark t — the
  unpaired (conservative) formula; pairing can only narrow it.

Every record carries each benchmark's per-item correctness (``eval.tasks.<t>.per_item_correct``: ``doc_ids`` and a
0/1 string); rows whose records predate it, or whose items differ from the reference's, get no paired figures.
"""

from __future__ import annotations

import math

import numpy as np

from diq.record import RunRecord

Z = 1.959963984540054 + 0.8416212335729143  # z_{0.975} + z_{0.8}
B = 2000  # bootstrap replicates


def correctness(rec: RunRecord) -> dict[str, dict[int, int]] | None:
    """``{task: {doc_id: 0/1}}`` for the averaged benchmarks of a record, or None when it has no per-item data."""
    tasks = RunRecord.of(rec).tasks
    out = {}
    for name, t in tasks.items():
        if t.get("category") not in ("S", "C"):
            continue
        pic = t.get("per_item_correct")
        if not pic:
            return None
        out[name] = dict(zip(pic["doc_ids"], (int(c) for c in pic["correct"])))
    return out or None


def _matrix(seeds: list[dict[str, dict[int, int]]], items: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Per task: a seeds × items 0/1 array over the common items."""
    return {t: np.array([[s[t][i] for i in ids] for s in seeds], dtype=float) for t, ids in items.items()}


def _avga(mats: dict[str, np.ndarray], idx: dict[str, np.ndarray] | None = None, seed_idx=None) -> float:
    vals = []
    for t, m in mats.items():
        m = m if seed_idx is None else m[seed_idx]
        m = m if idx is None else m[:, idx[t]]
        vals.append(m.mean())
    return float(np.mean(vals))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: b and c are the discordant counts."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def mdd_from(tasks: list[tuple[float, int]]) -> float:
    """Minimum detectable difference of AvgA (α = 0.05, power 0.8) from each benchmark's (accuracy, item count),
    unpaired formula (module docstring)."""
    var = sum(p * (1 - p) / n for p, n in tasks if n)
    return Z * math.sqrt(2 * var) / len(tasks) if tasks else float("nan")


def task_accuracies(rec: RunRecord) -> list[tuple[float, int]]:
    """(accuracy, n) of each averaged benchmark of a record (what ``mdd_from`` needs; no per-item data)."""
    tasks = RunRecord.of(rec).tasks
    return [(float(t["value"]), int(t.get("n") or 0)) for t in tasks.values()
            if t.get("category") in ("S", "C") and 0 <= float(t["value"]) <= 1]


def paired(row_seeds: list[dict], ref_seeds: list[dict], seed: int = 0) -> dict | None:
    """Δ AvgA (row − reference), its paired-bootstrap 95 % CI and, for one seed each, McNemar's exact p. None when
    the two rows were not scored on the same benchmarks and items."""
    if not row_seeds or not ref_seeds:
        return None
    tasks = set(row_seeds[0])
    if any(set(s) != tasks for s in row_seeds + ref_seeds):
        return None
    items = {}
    for t in sorted(tasks):
        ids = set(ref_seeds[0][t])
        if any(set(s[t]) != ids for s in row_seeds + ref_seeds):
            return None
        items[t] = sorted(ids)
    a, r = _matrix(row_seeds, items), _matrix(ref_seeds, items)
    delta = _avga(a) - _avga(r)
    rng = np.random.default_rng(seed)
    reps = np.empty(B)
    for b in range(B):
        idx = {t: rng.integers(0, len(ids), len(ids)) for t, ids in items.items()}
        sa = rng.integers(0, len(row_seeds), len(row_seeds)) if len(row_seeds) > 1 else None
        sr = rng.integers(0, len(ref_seeds), len(ref_seeds)) if len(ref_seeds) > 1 else None
        reps[b] = _avga(a, idx, sa) - _avga(r, idx, sr)
    out = {"delta": delta, "ci_low": float(np.percentile(reps, 2.5)), "ci_high": float(np.percentile(reps, 97.5)),
           "n_items": sum(len(v) for v in items.values()), "mcnemar_p": None}
    if len(row_seeds) == 1 and len(ref_seeds) == 1:
        x = np.concatenate([a[t][0] for t in items])
        y = np.concatenate([r[t][0] for t in items])
        out["mcnemar_p"] = mcnemar_exact(int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum()))
    return out


def bootstrap_ci(seeds: list[dict], seed: int = 0) -> tuple[float, float] | None:
    """95 % CI of a row's AvgA, resampling items (and seeds, where there are several)."""
    if not seeds:
        return None
    items = {t: sorted(seeds[0][t]) for t in seeds[0]}
    if any(set(s) != set(items) or any(set(s[t]) != set(items[t]) for t in items) for s in seeds):
        return None
    m = _matrix(seeds, items)
    rng = np.random.default_rng(seed)
    reps = [_avga(m, {t: rng.integers(0, len(ids), len(ids)) for t, ids in items.items()},
                  rng.integers(0, len(seeds), len(seeds)) if len(seeds) > 1 else None) for _ in range(B)]
    return float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))

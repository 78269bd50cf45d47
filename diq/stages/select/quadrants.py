"""DIQ quadrant selection (docs/method.md).

High difficulty: D ≥ the τ_d-th percentile of D. High influence: Dot ≥ the median of Dot. Quadrants:
Q1 hard & influential, Q2 easy & influential, Q3 hard & weak, Q4 easy & weak. Selection walks Q1 → Q2 → Q3 → Q4;
inside a quadrant, Dot descending, ties by D descending, then by sample id ascending; it stops at k.
Ties at a threshold count as "high" (≥), so the split is deterministic.
"""

from __future__ import annotations

import numpy as np

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")


def assign(difficulty: np.ndarray, influence: np.ndarray, tau_d: float = 50.0
           ) -> tuple[np.ndarray, float, float]:
    """Quadrant index 0..3 per sample, the difficulty threshold and the influence threshold."""
    d_thr = float(np.percentile(difficulty, tau_d))
    i_thr = float(np.median(influence))
    hard = difficulty >= d_thr
    strong = influence >= i_thr
    q = np.where(strong, np.where(hard, 0, 1), np.where(hard, 2, 3))
    return q.astype(np.int8), d_thr, i_thr


def order(ids: np.ndarray, difficulty: np.ndarray, influence: np.ndarray, quadrant: np.ndarray,
          priority: tuple[int, ...] = (0, 1, 2, 3)) -> np.ndarray:
    """Positions sorted by (quadrant priority, -Dot, -D, id). Vectorised: lexsort takes the last key first."""
    rank = np.full(4, 99, dtype=np.int64)
    for r, q in enumerate(priority):
        rank[q] = r
    qrank = rank[quadrant]
    keep = qrank < 99
    pos = np.flatnonzero(keep)
    o = np.lexsort((ids[pos], -difficulty[pos], -influence[pos], qrank[pos]))
    return pos[o]


def select(ids: list[str] | np.ndarray, difficulty: np.ndarray, influence: np.ndarray, k: int,
           tau_d: float = 50.0, quadrants: tuple[str, ...] = QUADRANTS) -> tuple[list[str], dict]:
    ids = np.asarray(ids)
    q, d_thr, i_thr = assign(difficulty, influence, tau_d)
    prio = tuple(QUADRANTS.index(x) for x in quadrants)
    ordered = order(ids, difficulty, influence, q, prio)
    chosen = ordered[:k]
    sizes = {name: int((q == i).sum()) for i, name in enumerate(QUADRANTS)}
    taken = {name: int((q[chosen] == i).sum()) for i, name in enumerate(QUADRANTS)}
    info = {"tau_d": float(tau_d), "difficulty_threshold": d_thr, "influence_threshold": i_thr,
            "quadrant_sizes": sizes, "selected_per_quadrant": taken, "quadrant_order": list(quadrants),
            "short_by": int(max(0, k - len(chosen)))}
    return ids[chosen].tolist(), info


def scatter(path, difficulty: np.ndarray, influence: np.ndarray, selected: np.ndarray, info: dict, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    ax.scatter(difficulty[~selected], influence[~selected], s=10, c="#bbbbbb", label="not selected")
    ax.scatter(difficulty[selected], influence[selected], s=16, c="#d62728", label="selected")
    ax.axvline(info["difficulty_threshold"], color="k", lw=0.8, ls="--")
    ax.axhline(info["influence_threshold"], color="k", lw=0.8, ls="--")
    ax.set_xlabel(f"difficulty D (τ_d = {info['tau_d']:g}th percentile)")
    ax.set_ylabel("influence Dot = g(z)·ḡ_val")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)

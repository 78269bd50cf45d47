"""Group means, bootstrap confidence intervals of group differences, and inter-rater agreement."""

from __future__ import annotations

import numpy as np


def bootstrap_diff(a, b, n_boot: int = 2000, seed: int = 0, paired: bool = False, level: float = 0.95) -> dict:
    """mean(a) − mean(b) with a percentile bootstrap CI. ``paired``: a[i] and b[i] rate the same question (resample
    questions); otherwise the two groups are resampled independently."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("bootstrap_diff needs two non-empty groups")
    if paired and len(a) != len(b):
        raise ValueError(f"paired bootstrap needs equal group sizes, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    if paired:
        idx = rng.integers(0, len(a), size=(n_boot, len(a)))
        boots = (a[idx] - b[idx]).mean(1)
    else:
        boots = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(1) - \
            b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"diff": float(a.mean() - b.mean()), "ci_low": float(lo), "ci_high": float(hi), "level": level,
            "n_a": int(len(a)), "n_b": int(len(b)), "paired": bool(paired), "n_boot": int(n_boot)}


def cohen_kappa_quadratic(r1, r2, labels=(1, 2, 3, 4, 5)) -> float:
    """Quadratic-weighted Cohen's κ of two raters over the same items."""
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(np.asarray(r1, dtype=int), np.asarray(r2, dtype=int), labels=list(labels),
                                   weights="quadratic"))


def krippendorff_alpha(matrix, level: str = "ordinal", values=(1, 2, 3, 4, 5)) -> float:
    """Krippendorff's α of a raters × items matrix (NaN = not rated), ordinal or interval."""
    import krippendorff

    return float(krippendorff.alpha(reliability_data=np.asarray(matrix, dtype=float),
                                    level_of_measurement=level, value_domain=list(values)))


def agreement(ratings: dict[str, dict[str, float]]) -> dict:
    """``ratings``: rater → {item_id: rating}. κ (quadratic) for two raters on their common items; Krippendorff's α
    (ordinal and interval) for any number ≥ 2."""
    raters = sorted(ratings)
    items = sorted({i for r in raters for i in ratings[r]})
    out: dict = {"raters": raters, "n_items": len(items)}
    if len(raters) < 2:
        out["note"] = "agreement needs at least two raters"
        return out
    mat = np.array([[ratings[r].get(i, np.nan) for i in items] for r in raters], dtype=float)
    if (np.sum(~np.isnan(mat), axis=0) >= 2).sum() < 2:
        out["note"] = "fewer than two items were rated by two or more raters"
        return out
    out["krippendorff_alpha_ordinal"] = krippendorff_alpha(mat, "ordinal")
    out["krippendorff_alpha_interval"] = krippendorff_alpha(mat, "interval")
    if len(raters) == 2:
        both = ~np.isnan(mat).any(0)
        out["cohen_kappa_quadratic"] = cohen_kappa_quadratic(mat[0, both], mat[1, both])
        out["n_common"] = int(both.sum())
    return out

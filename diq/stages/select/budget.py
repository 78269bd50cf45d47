"""Budgets: k = round(fraction · |pool|), with the checks users get wrong."""

from __future__ import annotations

from diq.errors import DiqError


def budget_k(fraction, n_pool: int) -> int:
    if isinstance(fraction, bool) or fraction is None:
        raise DiqError(f"budget.fraction={fraction!r} is not a number\n  fix: use a fraction in (0, 1], e.g. 0.01")
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise DiqError(f"budget.fraction={fraction!r} is not a number\n  fix: use a fraction in (0, 1], e.g. 0.01") from None
    if not (0.0 < f <= 1.0):
        raise DiqError(f"budget.fraction={fraction} is outside (0, 1]\n"
                       f"  fix: use e.g. budget=p1 (0.01), budget=p10 (0.1) or budget=full (1.0)")
    if n_pool <= 0:
        raise DiqError("the pool is empty after loading and decontamination: nothing to select from\n"
                       "  fix: use a larger pool, or check what decontamination dropped (record.json → decontamination)")
    k = int(round(f * n_pool))
    if k == 0:
        raise DiqError(f"budget.fraction={fraction} of a {n_pool}-sample pool rounds to 0 samples\n"
                       f"  fix: use a fraction ≥ {0.5 / n_pool:.4g} for this pool, or a larger pool")
    return k

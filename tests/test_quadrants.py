"""Quadrant selection on hand-built score tables."""

from __future__ import annotations

import numpy as np
import pytest

from diq.errors import DiqError
from diq.stages.select import quadrants
from diq.stages.select.strategies import load_selection


def recs(ids):
    return [{"id": i} for i in ids]


def test_hand_table_order_and_thresholds():
    ids = ["a", "b", "c", "d", "e", "f", "g", "h"]
    D = np.array([5.0, 4.0, 1.0, 2.0, 5.0, 1.0, 3.0, 3.0])
    I = np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.05, 0.6, 0.6])
    # τ_d = 50 → threshold = median(D) = 3.0, so the two D = 3 rows (g, h) are "hard" (≥).
    # influence threshold = median(I) = (0.6 + 0.6) / 2 = 0.6 → strong (≥): a c d g h; weak: b e f.
    q, dthr, ithr = quadrants.assign(D, I, 50)
    assert dthr == 3.0 and ithr == pytest.approx(0.6)
    assert dict(zip(ids, q.tolist())) == {"a": 0, "b": 2, "c": 1, "d": 1, "e": 2, "f": 3, "g": 0, "h": 0}
    chosen, info = quadrants.select(ids, D, I, 8)
    # Q1: a(.9), g, h (I .6 tie, D 3 tie → id) | Q2: c(.8), d(.7) | Q3: e(.2), b(.1) | Q4: f
    assert chosen == ["a", "g", "h", "c", "d", "e", "b", "f"]
    assert info["quadrant_sizes"] == {"Q1": 3, "Q2": 2, "Q3": 2, "Q4": 1}
    assert quadrants.select(ids, D, I, 4)[0] == ["a", "g", "h", "c"]


def test_ties_at_tau_d_are_hard_and_deterministic():
    ids = [f"s{i}" for i in range(6)]
    D = np.array([2.0, 2.0, 2.0, 2.0, 1.0, 3.0])
    I = np.array([1.0, 1.0, 0.5, 0.5, 2.0, 0.1])
    q, dthr, _ = quadrants.assign(D, I, 50)
    assert dthr == 2.0 and (q[:4] <= 2).all() and q[4] in (1, 3)
    a, _ = quadrants.select(ids, D, I, 3)
    b, _ = quadrants.select(list(reversed(ids)), D[::-1].copy(), I[::-1].copy(), 3)
    assert a == b == ["s0", "s1", "s4"]  # Q1 s0,s1 (I tie → id), then Q2 s4


def test_q1_smaller_than_budget_spills_in_priority_order():
    ids = [f"x{i}" for i in range(10)]
    D = np.arange(10, dtype=float)           # hard: x5..x9
    I = np.array([9, 8, 7, 6, 5, 0, 1, 2, 3, 4], float)  # strong (≥ 4.5): x0..x4
    chosen, info = quadrants.select(ids, D, I, 4)
    assert info["quadrant_sizes"]["Q1"] == 0
    assert chosen == ["x0", "x1", "x2", "x3"]  # all from Q2, by Dot
    chosen, info = quadrants.select(ids, D, I, 7)
    assert chosen[:5] == ["x0", "x1", "x2", "x3", "x4"] and chosen[5:] == ["x9", "x8"]  # then Q3 by Dot
    assert info["selected_per_quadrant"] == {"Q1": 0, "Q2": 5, "Q3": 2, "Q4": 0}


def test_budget_full_takes_everything_in_order():
    rng = np.random.default_rng(0)
    ids = [f"id{i:03d}" for i in range(101)]
    D, I = rng.normal(size=101), rng.normal(size=101)
    chosen, info = quadrants.select(ids, D, I, 101)
    assert sorted(chosen) == ids and len(set(chosen)) == 101
    q, _, _ = quadrants.assign(D, I, 50)
    qs = [int(q[ids.index(c)]) for c in chosen]
    assert qs == sorted(qs)


def test_strategies_on_a_table():
    ids = ["a", "b", "c", "d"]
    scores = {"influence": np.array([0.1, 0.4, 0.3, 0.2]), "difficulty": np.array([1, 2, 3, 4.0])}
    assert load_selection("diq", tau_d=50).select(recs(ids), scores, 2).ids == ["c", "b"]
    assert load_selection("influence").select(recs(ids), scores, 2).ids == ["b", "c"]
    assert load_selection("difficulty", perspective="overall").select(recs(ids), scores, 2).ids == ["d", "c"]
    q4 = load_selection("quadrant", quadrant="Q4", fill=False)
    assert q4.select(recs(ids), scores, 1).ids == ["a"]
    with pytest.raises(DiqError, match="quadrant Q4 holds 1 samples, fewer than the budget k=2"):
        q4.select(recs(ids), scores, 2)
    assert load_selection("quadrant", quadrant="Q4", fill=True).select(recs(ids), scores, 2).ids[0] == "a"
    # DIQ restricted to quadrants that hold fewer than k: a named error with the numbers and the fix (it used to be
    # a RuntimeError traceback after scoring)
    q1 = load_selection("diq", tau_d=50, quadrants=["Q1"])
    assert q1.select(recs(ids), scores, 1).ids == ["c"]
    with pytest.raises(DiqError, match=r"selection.quadrants=\['Q1'\] hold 1 samples \(Q1: 1\), fewer than the budget "
                                       r"k=3[\s\S]*fix: list more quadrants[\s\S]*budget.fraction <= 0.250"):
        q1.select(recs(ids), scores, 3)


def test_nan_scores_fail_with_ids():
    scores = {"influence": np.array([0.1, np.nan, 0.3]), "difficulty": np.array([1, 2, np.inf])}
    with pytest.raises(DiqError, match=r"1 difficulty score\(s\) are NaN or inf, e.g. for samples \['c'\]"):
        load_selection("diq").select(recs(["a", "b", "c"]), scores, 1)
    scores["difficulty"][2] = 3.0
    with pytest.raises(DiqError, match=r"1 influence score\(s\) are NaN or inf, e.g. for samples \['b'\]"):
        load_selection("diq").select(recs(["a", "b", "c"]), scores, 1)


def test_unknown_strategy_lists_choices():
    with pytest.raises(DiqError, match=r"unknown selection strategy 'dq'[\s\S]*difficulty, diq, full"):
        load_selection("dq")


def test_a_mistyped_strategy_key_fails_when_the_strategy_is_built():
    with pytest.raises(DiqError, match=r"selection 'diq' \(diq.stages.select.strategies.Quadrants\): [\s\S]*tau[\s\S]*spelling"):
        load_selection("diq", tau=50)
    with pytest.raises(DiqError, match=r"selection.quadrant='Q7'; choose one of Q1, Q2, Q3, Q4"):
        load_selection("quadrant", quadrant="Q7")


def test_every_strategy_is_named_by_target_with_its_needs():
    from diq.stages.select.strategies import Strategy, strategy_names

    for name in strategy_names():
        s = load_selection(name)
        assert isinstance(s, Strategy) and s.name == name
    assert load_selection("diq").needs == ["influence", "difficulty"] and load_selection("random").needs == []
    assert load_selection("random", seed=3).seed == 3


def test_million_sample_selection_is_fast():
    import time

    rng = np.random.default_rng(0)
    n = 1_000_000
    ids = np.array([f"{i:07d}" for i in range(n)])
    D, I = rng.normal(size=n), rng.normal(size=n)
    t = time.time()
    chosen, _ = quadrants.select(ids, D, I, n // 100)
    assert len(chosen) == 10_000
    assert time.time() - t < 15  # the benchmark reports the real figure; this only guards regressions

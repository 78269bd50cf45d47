"""One row per distinct configuration (cell_hash): seeds averaged, the paper's numbers beside, costs, planted
precision, and the evidence (run folders, commits, per-item files) of every row."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from diq.record import RunRecord
from diq.report import stats
from diq.report.records import PAPER, PAPER_MODEL, PAPER_POOL, budget_name, cell_key


def _paper_rows() -> dict[tuple[str, str], dict]:
    if not PAPER.exists():
        return {}
    data = json.loads(PAPER.read_text())
    return {(r["strategy"], r["budget"]): r for r in data["main_table"]}


def _strategy_label(r: RunRecord) -> str:
    sel = r.cfg("selection")
    s = r.strategy
    if s == "difficulty" and sel.get("perspective"):
        s += f":{sel['perspective']}"
    if s == "quadrant" and sel.get("quadrant"):
        s += f":{sel['quadrant']}"
    s = "base model" if r.base_model else s
    if r.stages.dpo.dpo or r.cfg("dpo").get("enabled"):
        s += " + DPO"
    return s


def context(r: RunRecord) -> dict:
    """What a record measured: model, pool and size, benchmarks with n each, limits, difficulty source, validation."""
    c = r.config or {}
    bench = " ".join(f"{n}:{t.get('n')}" for n, t in sorted(r.tasks.items()))
    if not bench and r.stages.eval.eval_plan:
        bench = " ".join(sorted(r.stages.eval.eval_plan))
    scores = r.stages.score.scores or {}
    val = (scores.get("validation") or {}).get("per_task")
    diff = (scores.get("difficulty") or {}).get("source")
    limited = []
    if r.hub_fixtures or r.model == "tiny" or (c.get("hub_fixtures")):
        limited.append("debug (tiny model / fixtures)")
    lim = (c.get("eval") or {}).get("limit")
    if lim:
        limited.append(f"eval.limit={lim}")
    if (c.get("pool") or {}).get("limit"):
        limited.append(f"pool.limit={c['pool']['limit']}")
    n = r.stages.eval.averages_n or {}
    pool = r.stages.pool
    paper = (r.model == PAPER_MODEL and pool.pool == PAPER_POOL and not limited
             and n.get("AvgS") == 3 and n.get("AvgC") == 6)
    return {"model": r.model, "pool": pool.pool, "n_pool": pool.n_pool, "benchmarks": bench,
            "eval_limit": lim, "difficulty": diff or "",
            "validation": " ".join(f"{k}:{v}" for k, v in sorted(val.items())) if val else "",
            "limited": "; ".join(limited), "_paper": paper}


def _cost(r: RunRecord) -> dict:
    s = r.seconds_computed or r.seconds or {}
    dev = r.cfg("eval").get("device")
    return {"score_s": s.get("score", 0.0) + s.get("select", 0.0), "train_s": s.get("train", 0.0),
            "eval_s": s.get("eval", 0.0), "device": dev}


def _rel(p: str) -> str:
    """A path relative to the current folder when it lies under it (committed tables stay readable elsewhere)."""
    import os

    try:
        ap = os.path.abspath(p)
        return os.path.relpath(ap) if ap.startswith(os.getcwd() + os.sep) else p
    except (TypeError, ValueError):
        return p


def _run_place(path: str) -> str:
    """A record's run folder, or the record file itself for a committed copy (results/records/<id>/<run>.record.json)."""
    p = Path(path)
    return str(p) if p.name not in ("record.json", "record.failed.json") else str(p.parent)


def _mean_std(vals):
    v = pd.Series([x for x in vals if x is not None], dtype=float) * 100
    if v.empty:
        return None, None
    return round(float(v.mean()), 2), (round(float(v.std(ddof=1)), 2) if len(v) > 1 else None)


def aggregate(records: list[RunRecord | dict], table: str, command: str | None, dups: int = 0, failed_aside: int = 0,
              reference: str = "random", unreadable: int = 0) -> list[dict]:
    """One row per distinct configuration (cell_hash); seeds are the only thing averaged. Each row is compared with
    ``reference`` (a strategy label) at the same budget and with the base model, paired over benchmark items
    (``diq.report.stats``)."""
    if not records:
        return []
    records = [RunRecord.of(r) for r in records]
    df = pd.DataFrame({"rec": records, "key": [cell_key(r) for r in records]})
    paper = _paper_rows()
    rows = []
    for key, g in df.groupby("key", sort=False):
        rs = list(g["rec"])
        done = [r for r in rs if r.complete]
        r0 = (done or rs)[0]
        ctx = context(r0)
        strat = _strategy_label(r0)
        budget = budget_name(r0.budget_fraction or 0, r0.base_model)
        cell = r0.cell or {}
        row = {"table": table, "strategy": strat, "budget": budget,
               "cell": "" if r0.base_model else " ".join(f"{k}={v}" for k, v in sorted(cell.items())),
               "status": "complete" if done else "failed", "n_seeds": len({r.seed for r in done}),
               "seeds": " ".join(str(s) for s in sorted({r.seed for r in done})), "records": len(rs),
               "set_aside_duplicates": dups, "set_aside_failed": failed_aside, "set_aside_unreadable": unreadable,
               **{k: v for k, v in ctx.items() if not k.startswith("_")}}
        for k in ("AvgS", "AvgC", "AvgA"):
            row[k], row[f"{k}_std"] = _mean_std([r.averages.get(k) for r in done])
        n = r0.stages.eval.averages_n or {}
        row["n_S"], row["n_C"] = n.get("AvgS"), n.get("AvgC")
        tasks = r0.tasks
        if len(done) == 1 and len(tasks) == 1:  # one benchmark, one seed: its Wilson 95 % interval (×100)
            ci = next(iter(tasks.values())).get("ci95")
            row["AvgA_ci95"] = f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}" if ci else None
        if any(r.stages.select.planted for r in done):  # experiments/planted.yaml: the known answer
            pl = [r.stages.select.planted or {} for r in done]
            for col, key in (("in_domain_precision", "precision_in_domain"), ("corrupted_share", "share_corrupted")):
                row[col], row[f"{col}_std"] = _mean_std([p.get(key) for p in pl])
            row["in_domain_base_rate"] = round(100 * pl[0]["base_rate_in_domain"], 2)
            row["corrupted_base_rate"] = round(100 * pl[0]["base_rate_corrupted"], 2)
        p = paper.get((r0.strategy, budget), {}) if ctx["_paper"] else {}
        for k in ("AvgS", "AvgC", "AvgA"):
            row[f"paper_{k}"] = p.get(k)
        row["delta_AvgA"] = round(row["AvgA"] - p["AvgA"], 2) if p.get("AvgA") and row["AvgA"] is not None else None
        if done:
            costs = pd.DataFrame([_cost(r) for r in done])
            for c in ("score_s", "train_s", "eval_s"):
                row[c] = round(float(costs[c].mean()), 1)
            row["device"] = costs["device"].iloc[0]
        if not done:
            row["error"] = str(rs[0].error or "?").splitlines()[0][:200]
        accs = [stats.task_accuracies(r) for r in done]  # (accuracy, n) per benchmark, accuracy averaged over seeds
        row["_acc"] = [(sum(a[i][0] for a in accs) / len(accs), accs[0][i][1]) for i in range(len(accs[0]))] \
            if accs and all(len(a) == len(accs[0]) for a in accs) else []
        corr = [stats.correctness(r) for r in done]
        row["_items"] = corr if corr and all(c is not None for c in corr) else None
        ci = stats.bootstrap_ci(row["_items"]) if row["_items"] else None
        row["AvgA_ci_low"], row["AvgA_ci_high"] = (round(100 * ci[0], 2), round(100 * ci[1], 2)) if ci else (None, None)
        row["run_dirs"] = " ".join(sorted(_rel(_run_place(r.path)) for r in rs))
        row["commits"] = " ".join(sorted({((r.git or {}).get("sha") or "?")[:12] for r in rs}))
        row["wandb_runs"] = " ".join(sorted({_rel(str(r.wandb).removeprefix("offline:")) if
                                             str(r.wandb).startswith("offline:") else str(r.wandb)
                                             for r in rs if r.wandb}))
        row["command"] = " | ".join(sorted({r.command or command or f"python -m diq.run experiment="
                                            f"{r.experiment}" for r in rs}))
        row["per_item"] = " ".join(sorted({_rel(r.stages.eval.per_item) for r in done if r.stages.eval.per_item}))
        row["scores_files"] = " ".join(sorted({_rel(r.stages.select.scores_file) for r in done
                                               if r.stages.select.scores_file}))
        rows.append(row)
    full = [r for r in rows if r["strategy"] == "full" and r.get("train_s")]
    for r in rows:  # the paper's cost claim: scoring DIQ costs 1/1.85 of one full-data SFT run
        for f in full:
            if f["model"] == r["model"] and f["pool"] == r["pool"] and r.get("score_s") is not None:
                r["select_cost_vs_full"] = round(r["score_s"] / f["train_s"], 3)
                r["total_cost_vs_full"] = round((r["score_s"] + (r.get("train_s") or 0)) / f["train_s"], 3)
    _compare(rows, reference)
    order = {"base": 0, "full": 3}
    rows.sort(key=lambda r: (order.get(r["budget"], 1), _budget_value(r["budget"]), r["strategy"], r["cell"]))
    return rows


def _budget_value(b: str) -> float:
    try:
        return float(b[1:]) if b.startswith("p") else 0.0
    except ValueError:
        return 0.0


def _same_setting(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("model", "pool", "benchmarks", "eval_limit"))


def _find(rows: list[dict], r: dict, strategy: str | None, budget: str) -> dict | None:
    """The row of ``strategy`` (any, for None) at ``budget`` in ``r``'s setting that has per-item data."""
    return next((x for x in rows if x["budget"] == budget and (strategy is None or x["strategy"] == strategy)
                 and x["_seeds"] and _same_setting(x, r)), None)


def _compare(rows: list[dict], reference: str) -> None:
    """Δ AvgA against ``reference`` at the same budget and against the base model, with paired-bootstrap CIs,
    McNemar's p (single seeds) and the minimum detectable difference at the reference's items (×100)."""
    for r in rows:
        r["_seeds"] = r.pop("_items", None)
    for r in rows:
        ref = _find(rows, r, reference, r["budget"])
        r["reference"] = f"{ref['strategy']} @ {ref['budget']}" if ref else None
        for key, other in (("ref", ref), ("base", _find(rows, r, None, "base"))):
            res = stats.paired(r["_seeds"], other["_seeds"]) if other is not None and other is not r and r["_seeds"] \
                else None
            for col, v in (("", "delta"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
                r[f"delta_{key}{col}"] = round(100 * res[v], 2) if res else None
            if key == "ref":
                r["mcnemar_p"] = float(f"{res['mcnemar_p']:.3g}") if res and res["mcnemar_p"] is not None else None
        own = next((x for x in rows if x["strategy"] == reference and x["budget"] == r["budget"] and x["_acc"]
                    and _same_setting(x, r)), r)
        r["mdd"] = round(100 * stats.mdd_from(own["_acc"]), 2) if own["_acc"] else None
    for r in rows:
        r.pop("_seeds", None)
        r.pop("_acc", None)


PRACTICE_COLUMNS = ["table", "strategy", "budget", "seed", "source", "dimension", "comparison", "mean", "baseline_mean",
                    "diff", "ci_low", "ci_high", "n", "judge"]


def practice_rows(records: list[RunRecord], table: str) -> list[dict]:
    """Expert-practice results carried by records (``python -m diq.practice samples|generations``)."""
    from diq.practice.criteria import DIMENSIONS

    rows = []
    for r in sorted(map(RunRecord.of, records), key=lambda r: (r.budget_fraction, r.strategy, r.seed)):
        ep = r.expert_practice or {}
        base = {"table": table, "strategy": r.strategy, "budget": budget_name(r.budget_fraction), "seed": r.seed}
        if "samples" in ep:
            s = ep["samples"]
            judge = s["judge"].get("model_name") or (s["judge"].get("model") or {}).get("name")
            for d in DIMENSIONS:
                b = s["differences"][d]["selected - unselected"]
                rows.append({**base, "source": "training samples", "dimension": d, "comparison": "selected − unselected",
                             "mean": round(s["means"][d]["selected"], 3), "baseline_mean": round(s["means"][d]["unselected"], 3),
                             "diff": round(b["diff"], 3), "ci_low": round(b["ci_low"], 3), "ci_high": round(b["ci_high"], 3),
                             "n": f"{b['n_a']}/{b['n_b']}", "judge": judge})
        if "generations" in ep:
            g = ep["generations"]
            judge = g["judge"].get("model_name") or (g["judge"].get("model") or {}).get("name")
            for d in DIMENSIONS:
                comp = next(iter((g["differences"].get(d) or {}).items()), None)
                rows.append({**base, "source": f"generations ({g['questions']}, {g['n_questions']} q)", "dimension": d,
                             "comparison": comp[0].replace(" - ", " − ") if comp else "(baseline)",
                             "mean": round(g["means"][d], 3), "baseline_mean": "", "diff": round(comp[1]["diff"], 3) if comp else "",
                             "ci_low": round(comp[1]["ci_low"], 3) if comp else "",
                             "ci_high": round(comp[1]["ci_high"], 3) if comp else "", "n": g["n_questions"], "judge": judge})
    return rows

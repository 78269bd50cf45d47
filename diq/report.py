"""``python -m diq.report`` — tables from run records, one row per distinct configuration, seeds averaged.

  python -m diq.report --experiment main_table            # records under ./runs/<id> and ./multirun/<id>
  python -m diq.report --records runs/x/*/ --table mine   # explicit record folders
  python -m diq.report --experiment demo --wandb          # also log the table to W&B (the experiment's group)
  python -m diq.report --render results/demo.csv          # re-render the markdown from a committed CSV
  python -m diq.report --check                            # every results/*.md equals its CSV's rendering

Rows are grouped by each record's ``cell_hash`` (its configuration with the seed removed), so only seeds are
averaged; for one configuration and seed the newest complete record wins. Duplicates and failed records set aside
are counted in the footer; a configuration with no complete record shows as a failed row with its error. Writes
``./results/<table>.csv`` (the data), ``<table>.md`` (rendered from the CSV only: what was measured, then the
table), ``<table>.provenance.md`` (each row's run folders, command, commit, W&B runs, per-item files) and
``<table>_avga.png``.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "experiments" / "paper_numbers.json"
PAPER_MODEL = "llama31_8b_instruct"
PAPER_POOL = "medical_o1"
COLUMNS = ["table", "strategy", "budget", "cell", "status", "n_seeds", "seeds", "AvgS", "AvgS_std", "AvgC", "AvgC_std",
           "AvgA", "AvgA_std", "n_S", "n_C", "paper_AvgS", "paper_AvgC", "paper_AvgA", "delta_AvgA", "model", "pool",
           "n_pool", "benchmarks", "eval_limit", "difficulty", "validation", "limited", "score_s", "train_s", "eval_s",
           "device", "select_cost_vs_full", "total_cost_vs_full", "error", "records", "set_aside_duplicates",
           "set_aside_failed", "in_domain_precision", "in_domain_precision_std", "in_domain_base_rate",
           "corrupted_share", "corrupted_share_std", "corrupted_base_rate", "AvgA_ci95", "run_dirs", "commits", "wandb_runs", "command", "per_item", "scores_files"]


def budget_name(f, strategy: str | None = None) -> str:
    if strategy == "none":
        return "base"
    return "full" if float(f) >= 1.0 else f"p{float(f) * 100:g}"


# --------------------------------------------------------------------------------------------- records
def find_records(experiment: str | None, paths: list[str]) -> list[Path]:
    found: list[Path] = []
    names = ("record.json", "record.failed.json")
    if experiment:
        for base in {Path("runs") / experiment, Path("multirun") / experiment, ROOT / "runs" / experiment,
                     ROOT / "multirun" / experiment}:
            for n in names:
                found += list(base.rglob(n))
    for p in paths:
        for g in glob.glob(p):
            q = Path(g)
            found += [q] if q.name in names else [x for n in names for x in q.rglob(n)]
    return sorted({p.resolve() for p in found})


def load_records(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """Parsed records (each with ``_path``); unreadable files are named and skipped, never fatal."""
    recs, bad = [], []
    for p in paths:
        try:
            r = json.loads(p.read_text())
            if not isinstance(r, dict) or "strategy" not in r:
                raise ValueError("not a diq record")
        except (OSError, ValueError) as e:
            bad.append(f"{p}: {type(e).__name__}: {str(e)[:120]}")
            continue
        r["_path"] = str(p)
        r["_mtime"] = p.stat().st_mtime
        recs.append(r)
    return recs, bad


def _strip_seeds(x):
    if isinstance(x, dict):
        return {k: _strip_seeds(v) for k, v in x.items() if k != "seed"}
    if isinstance(x, list):
        return [_strip_seeds(v) for v in x]
    return x


def cell_key(r: dict) -> str:
    """The record's configuration without its seed (``cell_hash``, written by diq.run; rebuilt for older records)."""
    if r.get("cell_hash"):
        return r["cell_hash"]
    from .artifacts import sha256_obj

    c = r.get("config")
    if not c:  # failed before its config was resolved (e.g. config validation): its command-line cell names it
        return sha256_obj({"cell": r.get("cell"), "strategy": r.get("strategy"), "model": r.get("model"),
                           "experiment": r.get("experiment"), "budget": r.get("budget_fraction")})
    return sha256_obj(_strip_seeds({k: c.get(k) for k in ("pool", "model", "selection", "budget", "train", "eval",
                                                          "scoring")}))


def dedupe(records: list[dict]) -> tuple[list[dict], int, int]:
    """Newest complete record per (configuration, seed); failed records only where nothing completed.
    Returns (kept, duplicates set aside, failed records set aside)."""
    by: dict[tuple, list[dict]] = {}
    for r in records:
        by.setdefault((cell_key(r), r.get("seed")), []).append(r)
    kept, dups, failed_aside = [], 0, 0
    for rs in by.values():
        rs = sorted(rs, key=lambda r: (r.get("finished_at") or "", r["_mtime"]), reverse=True)
        done = [r for r in rs if r.get("status") == "complete"]
        if done:
            kept.append(done[0])
            dups += len(done) - 1
            failed_aside += len(rs) - len(done)
        else:
            kept.append(rs[0])
            failed_aside += len(rs) - 1
    return kept, dups, failed_aside


def _paper_rows() -> dict[tuple[str, str], dict]:
    if not PAPER.exists():
        return {}
    data = json.loads(PAPER.read_text())
    return {(r["strategy"], r["budget"]): r for r in data["main_table"]}


def _strategy_label(r: dict) -> str:
    sel = (r.get("config") or {}).get("selection") or {}
    s = r["strategy"]
    if s == "difficulty" and sel.get("perspective"):
        s += f":{sel['perspective']}"
    if s == "quadrant" and sel.get("quadrant"):
        s += f":{sel['quadrant']}"
    s = "base model" if s == "none" else s
    if r.get("dpo") or ((r.get("config") or {}).get("dpo") or {}).get("enabled"):
        s += " + DPO"
    return s


def context(r: dict) -> dict:
    """What a record measured: model, pool and size, benchmarks with n each, limits, difficulty source, validation."""
    c = r.get("config") or {}
    ev = (r.get("eval") or {}).get("tasks") or {}
    bench = " ".join(f"{n}:{t.get('n')}" for n, t in sorted(ev.items()))
    if not bench and r.get("eval_plan"):
        bench = " ".join(sorted(r["eval_plan"]))
    val = ((r.get("scores") or {}).get("validation") or {}).get("per_task")
    diff = ((r.get("scores") or {}).get("difficulty") or {}).get("source")
    limited = []
    if r.get("hub_fixtures") or r.get("model") == "tiny" or (c.get("hub_fixtures")):
        limited.append("debug (tiny model / fixtures)")
    lim = (c.get("eval") or {}).get("limit")
    if lim:
        limited.append(f"eval.limit={lim}")
    if (c.get("pool") or {}).get("limit"):
        limited.append(f"pool.limit={c['pool']['limit']}")
    n = r.get("averages_n") or {}
    paper = (r.get("model") == PAPER_MODEL and r.get("pool") == PAPER_POOL and not limited
             and n.get("AvgS") == 3 and n.get("AvgC") == 6)
    return {"model": r.get("model"), "pool": r.get("pool"), "n_pool": r.get("n_pool"), "benchmarks": bench,
            "eval_limit": lim, "difficulty": diff or "",
            "validation": " ".join(f"{k}:{v}" for k, v in sorted(val.items())) if val else "",
            "limited": "; ".join(limited), "_paper": paper}


def _cost(r: dict) -> dict:
    s = r.get("seconds_computed") or r.get("seconds") or {}
    dev = ((r.get("config") or {}).get("eval") or {}).get("device")
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


def _mean_std(vals):
    v = pd.Series([x for x in vals if x is not None], dtype=float) * 100
    if v.empty:
        return None, None
    return round(float(v.mean()), 2), (round(float(v.std(ddof=1)), 2) if len(v) > 1 else None)


def aggregate(records: list[dict], table: str, command: str | None, dups: int = 0, failed_aside: int = 0) -> list[dict]:
    """One row per distinct configuration (cell_hash); seeds are the only thing averaged."""
    if not records:
        return []
    df = pd.DataFrame({"rec": records, "key": [cell_key(r) for r in records]})
    paper = _paper_rows()
    rows = []
    for key, g in df.groupby("key", sort=False):
        rs = list(g["rec"])
        done = [r for r in rs if r.get("status") == "complete"]
        r0 = (done or rs)[0]
        ctx = context(r0)
        strat = _strategy_label(r0)
        budget = budget_name(r0.get("budget_fraction") or 0, r0["strategy"])
        cell = r0.get("cell") or {}
        row = {"table": table, "strategy": strat, "budget": budget,
               "cell": "" if r0["strategy"] == "none" else " ".join(f"{k}={v}" for k, v in sorted(cell.items())),
               "status": "complete" if done else "failed", "n_seeds": len({r.get("seed") for r in done}),
               "seeds": " ".join(str(s) for s in sorted({r.get("seed") for r in done})), "records": len(rs),
               "set_aside_duplicates": dups, "set_aside_failed": failed_aside,
               **{k: v for k, v in ctx.items() if not k.startswith("_")}}
        for k in ("AvgS", "AvgC", "AvgA"):
            row[k], row[f"{k}_std"] = _mean_std([(r.get("averages") or {}).get(k) for r in done])
        n = r0.get("averages_n") or {}
        row["n_S"], row["n_C"] = n.get("AvgS"), n.get("AvgC")
        tasks = (r0.get("eval") or {}).get("tasks") or {}
        if len(done) == 1 and len(tasks) == 1:  # one benchmark, one seed: its Wilson 95 % interval (×100)
            ci = next(iter(tasks.values())).get("ci95")
            row["AvgA_ci95"] = f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}" if ci else None
        if any(r.get("planted") for r in done):  # experiments/planted.yaml: the known answer
            pl = [r.get("planted") or {} for r in done]
            for col, key in (("in_domain_precision", "precision_in_domain"), ("corrupted_share", "share_corrupted")):
                row[col], row[f"{col}_std"] = _mean_std([p.get(key) for p in pl])
            row["in_domain_base_rate"] = round(100 * pl[0]["base_rate_in_domain"], 2)
            row["corrupted_base_rate"] = round(100 * pl[0]["base_rate_corrupted"], 2)
        p = paper.get((r0["strategy"], budget), {}) if ctx["_paper"] else {}
        for k in ("AvgS", "AvgC", "AvgA"):
            row[f"paper_{k}"] = p.get(k)
        row["delta_AvgA"] = round(row["AvgA"] - p["AvgA"], 2) if p.get("AvgA") and row["AvgA"] is not None else None
        if done:
            costs = pd.DataFrame([_cost(r) for r in done])
            for c in ("score_s", "train_s", "eval_s"):
                row[c] = round(float(costs[c].mean()), 1)
            row["device"] = costs["device"].iloc[0]
        if not done:
            row["error"] = str(rs[0].get("error") or "?").splitlines()[0][:200]
        row["run_dirs"] = " ".join(sorted(_rel(str(Path(r["_path"]).parent)) for r in rs))
        row["commits"] = " ".join(sorted({((r.get("git") or {}).get("sha") or "?")[:12] for r in rs}))
        row["wandb_runs"] = " ".join(sorted({_rel(str(r["wandb"]).removeprefix("offline:")) if
                                             str(r["wandb"]).startswith("offline:") else str(r["wandb"])
                                             for r in rs if r.get("wandb")}))
        row["command"] = " | ".join(sorted({r.get("command") or command or f"python -m diq.run experiment="
                                            f"{r.get('experiment')}" for r in rs}))
        row["per_item"] = " ".join(sorted({_rel(r["per_item"]) for r in done if r.get("per_item")}))
        row["scores_files"] = " ".join(sorted({_rel(r["scores_file"]) for r in done if r.get("scores_file")}))
        rows.append(row)
    full = [r for r in rows if r["strategy"] == "full" and r.get("train_s")]
    for r in rows:  # the paper's cost claim: scoring DIQ costs 1/1.85 of one full-data SFT run
        for f in full:
            if f["model"] == r["model"] and f["pool"] == r["pool"] and r.get("score_s") is not None:
                r["select_cost_vs_full"] = round(r["score_s"] / f["train_s"], 3)
                r["total_cost_vs_full"] = round((r["score_s"] + (r.get("train_s") or 0)) / f["train_s"], 3)
    order = {"base": 0, "full": 3}
    rows.sort(key=lambda r: (order.get(r["budget"], 1), r["budget"], r["strategy"], r["cell"]))
    return rows


def write_csv(rows: list[dict], path: Path, columns: list[str] = COLUMNS) -> None:
    df = pd.DataFrame(rows, columns=columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    path.write_text(buf.getvalue())


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _num(x, fmt="{:.2f}"):
    return fmt.format(float(x)) if x not in ("", None) else "—"


def _cell(mean, std) -> str:
    if mean in ("", None):
        return "—"
    return f"{float(mean):.2f} ± {float(std):.2f}" if std not in ("", None) else f"{float(mean):.2f}"


PRACTICE_COLUMNS = ["table", "strategy", "budget", "seed", "source", "dimension", "comparison", "mean", "baseline_mean",
                    "diff", "ci_low", "ci_high", "n", "judge"]


def practice_rows(records: list[dict], table: str) -> list[dict]:
    """Expert-practice results carried by records (``python -m diq.practice samples|generations``)."""
    from .practice.rubric import DIMENSIONS

    rows = []
    for r in sorted(records, key=lambda r: (r["budget_fraction"], r["strategy"], r["seed"])):
        ep = r.get("expert_practice") or {}
        base = {"table": table, "strategy": r["strategy"], "budget": budget_name(r["budget_fraction"]), "seed": r["seed"]}
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


def render_practice(rows: list[dict], name: str) -> str:
    out = [f"# {name}", "", f"Generated by `python -m diq.report` from `{name}.csv`; do not edit.", "",
           "Expert-practice ratings 1–5 by an LLM judge (`python -m diq.practice`); differences with bootstrap 95 % CIs.",
           "", "| budget | strategy | seed | source | dimension | comparison | mean | baseline | Δ | 95 % CI | n | judge |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{float(r['ci_low']):+.2f}, {float(r['ci_high']):+.2f}]" if r["ci_low"] not in ("", None) else "—"
        diff = f"{float(r['diff']):+.2f}" if r["diff"] not in ("", None) else "—"
        base = f"{float(r['baseline_mean']):.2f}" if r["baseline_mean"] not in ("", None) else "—"
        out.append(f"| {r['budget']} | {r['strategy']} | {r['seed']} | {r['source']} | {r['dimension']} | "
                   f"{r['comparison']} | {float(r['mean']):.2f} | {base} | {diff} | {ci} | {r['n']} | {r['judge']} |")
    return "\n".join(out) + "\n"


def _header(df: pd.DataFrame) -> list[str]:
    def one(col):
        vals = sorted({v for v in df[col] if v != ""}) if col in df else []
        return vals[0] if len(vals) == 1 else ("varies by row (see the CSV)" if vals else "—")

    return ["## What was measured", "",
            f"- model: {one('model')}; pool: {one('pool')} ({one('n_pool')} samples after decontamination)",
            f"- benchmarks (task:n items scored): {one('benchmarks')}; eval item limit: {one('eval_limit')}",
            f"- difficulty source: {one('difficulty')}; validation items per target: {one('validation')}",
            f"- limits: {one('limited') if one('limited') != '—' else 'none (full setting)'}",
            "- paper columns appear only beside rows that ran the paper's setting (Llama-3.1-8B-Instruct, "
            "medical-o1 en, the nine bundle benchmarks, no limits)", ""]


def _planted_columns(df: pd.DataFrame) -> dict:
    """Planted-signal tables: in-domain precision and corrupted share (×100, base rate in brackets), the CI."""
    if "in_domain_precision" not in df or not any(df["in_domain_precision"]):
        return {}
    cols = {}
    for col, label in (("in_domain_precision", "in-domain % of selected"), ("corrupted_share", "corrupted % of selected")):
        base = df[col.replace("precision", "base_rate").replace("share", "base_rate")]
        cols[label] = [f"{_cell(m, s)} (base {b})" if m != "" else "—" for m, s, b in zip(df[col], df[f"{col}_std"], base)]
    cols["AvgA 95 % CI"] = df["AvgA_ci95"].replace("", "—")
    return cols


def render(csv_path: Path) -> str:
    df = _read_csv(csv_path)
    if "dimension" in df.columns:
        return render_practice(df.to_dict("records"), csv_path.stem)
    table = df["table"].iloc[0] if len(df) else csv_path.stem
    out = [f"# {table}", "", f"Generated by `python -m diq.report` from `{csv_path.name}`; do not edit. Evidence per "
           f"row: `{csv_path.stem}.provenance.md`.", ""] + _header(df)
    show = pd.DataFrame({
        "budget": df["budget"], "strategy": df["strategy"], "cell": df["cell"].replace("", "—"),
        "seeds": df["n_seeds"],
        "AvgS": [_cell(m, s) for m, s in zip(df["AvgS"], df["AvgS_std"])],
        "AvgC": [_cell(m, s) for m, s in zip(df["AvgC"], df["AvgC_std"])],
        "AvgA": [_cell(m, s) for m, s in zip(df["AvgA"], df["AvgA_std"])],
        "S/C benchmarks": [f"{a or '—'}/{b or '—'}" for a, b in zip(df["n_S"], df["n_C"])],
        **_planted_columns(df),
        "paper AvgA": df["paper_AvgA"].replace("", "—"), "Δ AvgA": df["delta_AvgA"].replace("", "—"),
        "score s": [_num(x, "{:.0f}") for x in df["score_s"]], "train s": [_num(x, "{:.0f}") for x in df["train_s"]],
        "eval s": [_num(x, "{:.0f}") for x in df["eval_s"]], "device": df["device"].replace("", "—"),
        "cost vs full": df["total_cost_vs_full"].replace("", "—"),
        "status": [s if s == "complete" else f"FAILED: {e}" for s, e in zip(df["status"], df["error"])],
    })
    out += ["## Results", "", "Scores ×100, mean ± std over seeds (std only with ≥ 2 seeds); — = not measured. Seconds "
            "are compute time (cached stages at the cost they took when computed).", "",
            show.to_markdown(index=False), ""]
    dup = df["set_aside_duplicates"].iloc[0] if len(df) else "0"
    fail = df["set_aside_failed"].iloc[0] if len(df) else "0"
    out += [f"Set aside: {dup} duplicate record(s) (same configuration and seed; the newest complete one is used) and "
            f"{fail} failed record(s) superseded or repeated.", ""]
    return "\n".join(out)


def render_provenance(csv_path: Path) -> str:
    df = _read_csv(csv_path)
    out = [f"# {csv_path.stem}: provenance", "", f"Generated by `python -m diq.report` from `{csv_path.name}`; "
           "one section per row of the table: the runs behind it, how to rerun it, and its per-item evidence.", ""]
    for r in df.to_dict("records"):
        out += [f"## {r['budget']} · {r['strategy']}" + (f" · {r['cell']}" if r["cell"] else ""), "",
                "| what | where |", "|---|---|",
                f"| command | `{r['command']}` |", f"| commit(s) | {r['commits'] or '?'} |",
                f"| run folder(s) (record.json, scores.parquet, selected_ids.json) | {r['run_dirs']} |",
                f"| W&B run(s) | {r['wandb_runs'] or 'disabled'} |",
                f"| per-item outputs (lm-eval samples) | {r['per_item'] or '—'} |",
                f"| per-sample scores | {r['scores_files'] or '—'} |", ""]
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> str | None:
    pts = [r for r in rows if r.get("AvgA") is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = {"base": 0.3, "p1": 1, "p10": 10, "full": 100}
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    label = lambda r: r["strategy"] + (f" {r['cell']}" if r.get("cell") else "")  # noqa: E731
    for strat in sorted({label(r) for r in pts}):
        rs = sorted((r for r in pts if label(r) == strat), key=lambda r: order.get(r["budget"], 50))
        xs = [order.get(r["budget"], float(r["budget"][1:]) if r["budget"].startswith("p") else 100) for r in rs]
        if len(rs) == 1 and rs[0]["budget"] == "base":
            ax.axhline(rs[0]["AvgA"], color="k", lw=0.8, ls=":", label="base model")
            continue
        ax.errorbar(xs, [r["AvgA"] for r in rs], yerr=[r.get("AvgA_std") or 0 for r in rs], marker="o", label=strat,
                    capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("budget (% of pool)")
    ax.set_ylabel("AvgA (×100)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def wandb_records(path: str, group: str) -> list[dict]:
    """Records from W&B runs (online): each run's config + summary mapped to the local record's fields."""
    import wandb

    out = []
    for run in wandb.Api().runs(path, filters={"group": group}):
        s, c = run.summary, run.config
        if s.get("status") != "complete":
            continue
        out.append({"strategy": c["selection"]["name"], "budget_fraction": c["budget"]["fraction"], "seed": c["seed"],
                    "model": c["model"]["name"], "pool": c["pool"]["name"], "experiment": group, "config": c,
                    "git": {"sha": next((t[4:] for t in run.tags if t.startswith("git:")), None)},
                    "averages": {k: s.get(f"eval/{k}") for k in ("AvgS", "AvgC", "AvgA")}})
    return out


def log_to_wandb(rows: list[dict], table: str, group: str | None) -> str | None:
    """The table as a W&B Table in the experiment's group (job type ``report``); mode and key from the environment."""
    import os

    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "diq"), group=group or table,
                     job_type="report", name=f"table-{table}", reinit="finish_previous")
    if run is None or getattr(run, "disabled", False):
        return None
    run.log({f"table/{table}": wandb.Table(dataframe=pd.DataFrame(rows, columns=COLUMNS).astype(str))})
    path = getattr(run, "path", None)
    run.finish()
    return path


def main(argv=None) -> int:
    from diq.logs import cli_logging

    cli_logging()
    ap = argparse.ArgumentParser(prog="python -m diq.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment")
    ap.add_argument("--records", nargs="*", default=[])
    ap.add_argument("--table", help="table name (default: the experiment id)")
    ap.add_argument("--wandb", action="store_true", help="also log the table as a W&B Table to the experiment's group")
    ap.add_argument("--wandb-runs", help="entity/project: also read that W&B project's runs in the experiment's group")
    ap.add_argument("--out", default="results", help="output folder (default: ./results of the current folder)")
    ap.add_argument("--render", help="re-render the markdown of one CSV")
    ap.add_argument("--check", action="store_true", help="fail if any results/*.md differs from its CSV's rendering")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.render:
        p = Path(args.render)
        p.with_suffix(".md").write_text(render(p))
        if "dimension" not in _read_csv(p).columns:
            p.with_name(f"{p.stem}.provenance.md").write_text(render_provenance(p))
        return 0
    if args.check:
        bad = []
        for c in sorted(out.glob("*.csv")):
            if not c.with_suffix(".md").exists() or c.with_suffix(".md").read_text() != render(c):
                bad.append(str(c.with_suffix(".md")))
            prov = c.with_name(f"{c.stem}.provenance.md")
            if "dimension" not in _read_csv(c).columns and (not prov.exists() or prov.read_text() != render_provenance(c)):
                bad.append(str(prov))
        if bad:
            print(f"error: results out of date (rebuild them with `python -m diq.report --experiment <id>` or "
                  f"`--render <csv>`): {bad}", file=sys.stderr)
            return 1
        print(f"{out}/: {len(list(out.glob('*.csv')))} table(s) match their CSVs")
        return 0
    table = args.table or args.experiment
    if not table:
        ap.error("give --experiment or --table with --records")
    paths = find_records(args.experiment, args.records)
    records, bad = load_records(paths)
    for b in bad:
        print(f"warning: skipped an unreadable record: {b}", file=sys.stderr)
    if args.wandb_runs:
        records += [{**r, "_path": f"wandb:{args.wandb_runs}", "_mtime": 0.0, "status": "complete"}
                    for r in wandb_records(args.wandb_runs, args.experiment)]
    if not any(r.get("status") == "complete" for r in records) and not records:
        print(f"error: no record.json found for {table!r} (looked under runs/{args.experiment}, "
              f"multirun/{args.experiment} of {Path.cwd()} and of {ROOT}, and {args.records})\n"
              f"  fix: run the experiment first (python -m diq.run experiment={args.experiment}) or pass --records",
              file=sys.stderr)
        return 2
    kept, dups, failed_aside = dedupe(records)
    rows = aggregate(kept, table, None, dups, failed_aside)
    csv_path = out / f"{table}.csv"
    write_csv(rows, csv_path)
    csv_path.with_suffix(".md").write_text(render(csv_path))
    csv_path.with_name(f"{table}.provenance.md").write_text(render_provenance(csv_path))
    plot(rows, out / f"{table}_avga.png")
    scatter = next((Path(r["plots"][0]) for r in kept if r.get("plots")), None)
    if scatter and scatter.exists():
        shutil.copyfile(scatter, out / f"{table}_quadrants.png")
    n_failed = sum(r["status"] == "failed" for r in rows)
    print(f"wrote {csv_path.resolve()}, {csv_path.with_suffix('.md').name} and {table}.provenance.md: {len(rows)} row(s) "
          f"from {len(kept)} record(s); set aside {dups} duplicate(s) and {failed_aside} failed record(s)"
          + (f"; {n_failed} row(s) failed" if n_failed else ""))
    if args.wandb:
        path = log_to_wandb(rows, table, args.experiment)
        print(f"logged the table to W&B: {path}" if path else "W&B is disabled (WANDB_MODE): nothing logged")
    prows = practice_rows([r for r in kept if r.get("status") == "complete"], table)
    if prows:
        p_csv = out / f"{table}_practice.csv"
        write_csv(prows, p_csv, PRACTICE_COLUMNS)
        p_csv.with_suffix(".md").write_text(render(p_csv))
        print(f"wrote {p_csv} and {p_csv.with_suffix('.md')} (expert practice)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

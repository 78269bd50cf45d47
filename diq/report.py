"""``python -m diq.report`` — tables from run records, beside the paper's numbers.

  python -m diq.report --experiment demo                 # records under runs/demo and multirun/demo
  python -m diq.report --records runs/x/*/ --table mine   # explicit record folders
  python -m diq.report --render results/demo.csv          # re-render the markdown from a committed CSV
  python -m diq.report --check                            # every results/*.md equals its CSV's rendering

Writes ``results/<table>.csv`` (the data) and ``results/<table>.md`` (rendered from the CSV only, so CI can
re-render and compare), plus ``results/<table>_avga.png`` (AvgA against budget per strategy) and the quadrant
scatter of a DIQ run when there is one. Cells: mean ± std over seeds (×100); a missing cell is "—".
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "experiments" / "paper_numbers.json"
COLUMNS = ["table", "strategy", "budget", "n_seeds", "AvgS", "AvgS_std", "AvgC", "AvgC_std", "AvgA", "AvgA_std",
           "paper_AvgS", "paper_AvgC", "paper_AvgA", "delta_AvgA", "model", "pool", "commits", "wandb_group",
           "command", "records"]


def budget_name(f: float) -> str:
    return "full" if float(f) >= 1.0 else f"p{float(f) * 100:g}"


def find_records(experiment: str | None, paths: list[str]) -> list[Path]:
    found: list[Path] = []
    if experiment:
        for base in (ROOT / "runs" / experiment, ROOT / "multirun" / experiment, Path("runs") / experiment,
                     Path("multirun") / experiment):
            found += list(base.rglob("record.json"))
    for p in paths:
        for g in glob.glob(p):
            q = Path(g)
            found += [q] if q.name == "record.json" else list(q.rglob("record.json"))
    return sorted({p.resolve() for p in found})


PAPER_MODEL = "llama31_8b_instruct"


def _paper_rows() -> dict[tuple[str, str], dict]:
    if not PAPER.exists():
        return {}
    data = json.loads(PAPER.read_text())
    return {(r["strategy"], r["budget"]): r for r in data["main_table"]}


def aggregate(records: list[dict], table: str, command: str | None) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        strat = r["strategy"] + (f":{r['config']['selection'].get('perspective')}" if r["strategy"] == "difficulty" else "") \
            + (f":{r['config']['selection'].get('quadrant')}" if r["strategy"] == "quadrant" else "")
        groups.setdefault((strat, budget_name(r["budget_fraction"])), []).append(r)
    paper = _paper_rows()
    rows = []
    for (strat, budget), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row = {"table": table, "strategy": strat, "budget": budget, "n_seeds": len({r["seed"] for r in rs}),
               "model": rs[0]["model"], "pool": rs[0].get("pool"),
               "command": command or f"python -m diq.run experiment={rs[0].get('experiment')}",
               "commits": " ".join(sorted({(r.get("git") or {}).get("sha") or "?" for r in rs}))[:80],
               "wandb_group": rs[0].get("experiment"), "records": len(rs)}
        for k in ("AvgS", "AvgC", "AvgA"):
            vals = [100 * r["averages"][k] for r in rs if (r.get("averages") or {}).get(k) is not None]
            row[k] = round(statistics.mean(vals), 2) if vals else None
            row[f"{k}_std"] = round(statistics.stdev(vals), 2) if len(vals) > 1 else None  # one seed: no spread
        p = paper.get((strat, budget), {})
        for k in ("AvgS", "AvgC", "AvgA"):
            row[f"paper_{k}"] = p.get(k)
        # a delta is meaningful only against the paper's own model; other models show the reference alone
        same_model = rs[0]["model"] == PAPER_MODEL
        row["delta_AvgA"] = round(row["AvgA"] - p["AvgA"], 2) if same_model and row["AvgA"] is not None \
            and p.get("AvgA") else None
        rows.append(row)
    # the paper's cells this run set did not produce are listed as missing
    present = {(r["strategy"], r["budget"]) for r in rows}
    for (strat, budget), p in paper.items():
        if (strat, budget) not in present and table == "main_table":
            rows.append({"table": table, "strategy": strat, "budget": budget, "n_seeds": 0, **{f"paper_{k}": p[k]
                         for k in ("AvgS", "AvgC", "AvgA")}, "command": command})
    return rows


def write_csv(rows: list[dict], path: Path, columns: list[str] = COLUMNS) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())


def _cell(mean: str, std: str) -> str:
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


def render(csv_path: Path) -> str:
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    if rows and "dimension" in rows[0]:
        return render_practice(rows, csv_path.stem)
    table = rows[0]["table"] if rows else csv_path.stem
    out = [f"# {table}", "", f"Generated by `python -m diq.report` from `{csv_path.name}`; do not edit.", "",
           "Scores ×100, mean ± std over seeds; — = not run. Paper: Llama-3.1-8B-Instruct (METHOD.md); Δ only for rows "
           "run on that model.", "",
           "| budget | strategy | seeds | AvgS | AvgC | AvgA | paper AvgS | paper AvgC | paper AvgA | Δ AvgA |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['budget']} | {r['strategy']} | {r['n_seeds'] or 0} | {_cell(r['AvgS'], r['AvgS_std'])} | "
                   f"{_cell(r['AvgC'], r['AvgC_std'])} | {_cell(r['AvgA'], r['AvgA_std'])} | {r['paper_AvgS'] or '—'} | "
                   f"{r['paper_AvgC'] or '—'} | {r['paper_AvgA'] or '—'} | {r['delta_AvgA'] or '—'} |")
    prov = {(r["command"], r["commits"], r["wandb_group"]) for r in rows if r["n_seeds"] not in ("", "0")}
    out += ["", "## Provenance", "", "| table | config | command | commit(s) | W&B group |", "|---|---|---|---|---|"]
    for cmd, commits, group in sorted(prov):
        out.append(f"| {table} | experiments/{group or table}.yaml | `{cmd}` | {commits or '?'} | {group or '—'} |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], path: Path) -> str | None:
    pts = [r for r in rows if r.get("AvgA") is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = {"p1": 1, "p10": 10, "full": 100}
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    for strat in sorted({r["strategy"] for r in pts}):
        rs = sorted((r for r in pts if r["strategy"] == strat), key=lambda r: order.get(r["budget"], 50))
        xs = [order.get(r["budget"], float(r["budget"][1:]) if r["budget"].startswith("p") else 100) for r in rs]
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m diq.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment")
    ap.add_argument("--records", nargs="*", default=[])
    ap.add_argument("--table", help="table name (default: the experiment id)")
    ap.add_argument("--wandb", help="entity/project: also read that W&B project's runs in the experiment's group")
    ap.add_argument("--out", default=str(ROOT / "results"))
    ap.add_argument("--render", help="re-render the markdown of one CSV")
    ap.add_argument("--check", action="store_true", help="fail if any results/*.md differs from its CSV's rendering")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.render:
        p = Path(args.render)
        p.with_suffix(".md").write_text(render(p))
        return 0
    if args.check:
        bad = [str(c) for c in sorted(out.glob("*.csv")) if not c.with_suffix(".md").exists()
               or c.with_suffix(".md").read_text() != render(c)]
        if bad:
            print(f"error: results out of date (edit the CSV's records, then `python -m diq.report --render`): {bad}",
                  file=sys.stderr)
            return 1
        print(f"results/: {len(list(out.glob('*.csv')))} table(s) match their CSVs")
        return 0
    table = args.table or args.experiment
    if not table:
        ap.error("give --experiment or --table with --records")
    paths = find_records(args.experiment, args.records)
    records = [json.loads(p.read_text()) for p in paths]
    records = [r for r in records if r.get("status") == "complete"]
    if args.wandb:
        records += wandb_records(args.wandb, args.experiment)
    if not records:
        print(f"error: no complete record.json found for {table!r} (looked under runs/{args.experiment}, "
              f"multirun/{args.experiment} and {args.records})", file=sys.stderr)
        return 2
    cmd = f"python -m diq.run{' -m' if any('multirun' in str(p) for p in paths) else ''} experiment={args.experiment}" \
        if args.experiment else None
    rows = aggregate(records, table, cmd)
    csv_path = out / f"{table}.csv"
    write_csv(rows, csv_path)
    csv_path.with_suffix(".md").write_text(render(csv_path))
    plot(rows, out / f"{table}_avga.png")
    scatter = next((Path(r["plots"][0]) for r in records if r.get("plots")), None)
    if scatter and scatter.exists():
        shutil.copyfile(scatter, out / f"{table}_quadrants.png")
    print(f"wrote {csv_path} and {csv_path.with_suffix('.md')} from {len(records)} record(s)")
    prows = practice_rows(records, table)
    if prows:
        p_csv = out / f"{table}_practice.csv"
        write_csv(prows, p_csv, PRACTICE_COLUMNS)
        p_csv.with_suffix(".md").write_text(render(p_csv))
        print(f"wrote {p_csv} and {p_csv.with_suffix('.md')} (expert practice)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

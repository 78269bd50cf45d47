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
``<table>_avga.png`` (AvgA by budget, one line per strategy) and ``<table>_delta.png`` (Δ vs the reference).

Paired statistics (``diq.report.stats``): every row's Δ AvgA against ``--reference`` (default random) at the same
budget and against the base model, with 95 % CIs from a paired bootstrap over benchmark items (and seeds), McNemar's
exact p for single-seed pairs, and the minimum detectable difference at the table's item counts in the header.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pandas as pd

from diq.args import parser
from diq.artifacts import write_text
from diq.report.records import COLUMNS, ROOT, dedupe, find_records, load_records
from diq.report.render import _read_csv, plot, plot_delta, render, render_provenance, write_csv
from diq.report.table import PRACTICE_COLUMNS, aggregate, practice_rows


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


def _rendered(p: Path) -> tuple[str, str | None]:
    """The markdown and provenance (None for a practice table) of a CSV this tool wrote; ValueError saying why
    ``p`` is not one."""
    if not p.is_file():
        raise ValueError("no such file")
    try:
        cols = set(_read_csv(p).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"not a readable CSV ({type(e).__name__}: {str(e).strip()[:120]})") from None
    try:
        return render(p), (None if "dimension" in cols else render_provenance(p))
    except KeyError as e:
        raise ValueError(f"not a diq.report table: it has no column {e}") from None


def main(argv=None) -> int:
    from diq.logs import cli_logging

    cli_logging()
    ap = parser("report", __doc__)
    ap.add_argument("--experiment")
    ap.add_argument("--records", nargs="*", default=[])
    ap.add_argument("--table", help="table name (default: the experiment id)")
    ap.add_argument("--wandb", action="store_true", help="also log the table as a W&B Table to the experiment's group")
    ap.add_argument("--wandb-runs", help="entity/project: also read that W&B project's runs in the experiment's group")
    ap.add_argument("--out", default="results", help="output folder (default: ./results of the current folder)")
    ap.add_argument("--render", help="re-render the markdown of one CSV")
    ap.add_argument("--check", action="store_true", help="fail if any results/*.md differs from its CSV's rendering")
    ap.add_argument("--only-experiment", help="keep only the records of this experiment (a sweep's table reads its "
                    "parent folder, which a custom hydra.sweep.dir may share with other experiments)")
    ap.add_argument("--reference", default="random",
                    help="the strategy every row's Δ column compares with, at the same budget (default: random; "
                         "e.g. 'base model', diq); a sweep's table takes report.reference")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.render:
        p = Path(args.render)
        try:
            md, prov = _rendered(p)
        except ValueError as e:
            print(f"error: --render {p}: {e}\n  fix: pass a results/<table>.csv written by python -m diq.report "
                  f"(it renders that CSV's .md and .provenance.md)", file=sys.stderr)
            return 2
        p.with_suffix(".md").write_text(md)
        if prov is not None:
            p.with_name(f"{p.stem}.provenance.md").write_text(prov)
        return 0
    if args.check:
        if not any(out.glob("*.csv")):
            print(f"error: --check: no results CSV in {out.resolve()}\n  fix: run it where results/ is (the repository "
                  f"root) or pass --out <folder of the tables>", file=sys.stderr)
            return 2
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
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", table):
        print(f"error: table name {table!r}: letters, digits, '_', '.', '-' only (it names files under --out)\n"
              f"  fix: e.g. --table main_table_rerun", file=sys.stderr)
        return 2
    with table_lock(out, table):  # two sweeps ending at once: one table at a time, each read after the other's write
        return _build(args, out, table)


def table_lock(out: Path, table: str):
    """An exclusive lock on ``<out>/.<table>.lock`` while a table is read from the records and written."""
    import fcntl
    from contextlib import contextmanager

    @contextmanager
    def held():
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f".{table}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    return held()


def _build(args, out: Path, table: str) -> int:
    paths = find_records(args.experiment, args.records)
    records, bad = load_records(paths)
    for b in bad:
        print(f"warning: skipped an unreadable record: {b}", file=sys.stderr)
    if args.only_experiment:
        records = [r for r in records if r.experiment == args.only_experiment]
    if args.wandb_runs:
        records += [{**r, "_path": f"wandb:{args.wandb_runs}", "_mtime": 0.0, "status": "complete"}
                    for r in wandb_records(args.wandb_runs, args.experiment)]
    if not any(r.complete for r in records) and not records:
        print(f"error: no record.json found for {table!r} (looked under runs/{args.experiment}, "
              f"multirun/{args.experiment} of {Path.cwd()} and of {ROOT}, and {args.records})\n"
              f"  fix: run the experiment first (python -m diq.run experiment={args.experiment}) or pass --records",
              file=sys.stderr)
        return 2
    kept, dups, failed_aside = dedupe(records)
    rows = aggregate(kept, table, None, dups, failed_aside, args.reference, unreadable=len(bad))
    csv_path = out / f"{table}.csv"
    write_csv(rows, csv_path)
    write_text(csv_path.with_suffix(".md"), render(csv_path))
    write_text(csv_path.with_name(f"{table}.provenance.md"), render_provenance(csv_path))
    plot(rows, out / f"{table}_avga.png")
    plot_delta(rows, out / f"{table}_delta.png")
    scatter = next((Path(r.stages.select.plots[0]) for r in kept if r.stages.select.plots), None)
    if scatter and scatter.exists():
        shutil.copyfile(scatter, out / f"{table}_quadrants.png")
    n_failed = sum(r["status"] == "failed" for r in rows)
    print(f"wrote {csv_path.resolve()}, {csv_path.with_suffix('.md').name} and {table}.provenance.md: {len(rows)} row(s) "
          f"from {len(kept)} record(s); set aside {dups} duplicate(s) and {failed_aside} failed record(s)"
          + (f"; skipped {len(bad)} unreadable record(s) (named above)" if bad else "")
          + (f"; {n_failed} row(s) failed" if n_failed else ""))
    if args.wandb:
        path = log_to_wandb(rows, table, args.experiment)
        print(f"logged the table to W&B: {path}" if path else "W&B is disabled (WANDB_MODE): nothing logged")
    prows = practice_rows([r for r in kept if r.complete], table)
    if prows:
        p_csv = out / f"{table}_practice.csv"
        write_csv(prows, p_csv, PRACTICE_COLUMNS)
        write_text(p_csv.with_suffix(".md"), render(p_csv))
        print(f"wrote {p_csv} and {p_csv.with_suffix('.md')} (expert practice)")
    return 0


"""``python -m diq.tools.diagnose RUN [RUN ...]`` — does the selection find what matters? Diagnostics of a run's scores.

For each run folder (one that scored: it has ``record.json`` and ``scores.parquet``):

- **stability**: Jaccard overlap of the selected ids when only one thing changes — the LoRA init seed
  (``--seeds``), the draw of validation items (``--draws``), exact vs JL-projected Dot (``--proj-dim``) — at the
  run's budget and at 1 % / 10 %; and, with ``--val-sizes 5,10,20,40``, DIQ's selection between validation sets
  of those sizes per benchmark (each against the largest);
- **what each score prefers**: Spearman of Dot with response length, with D and with the base-model loss, and of
  D with length;
- **the paper's premise**: quadrant composition (n, mean length, D, Dot) with three example samples each;
- **plots**: Dot vs length and D vs length, the selection highlighted.

Every extra scoring pass goes through the score cache (one pass per seed, draw, projection or size, reused on a
rerun). Output: ``RUN/diagnostics/diagnostics.json`` + plots, a ``diagnostics`` summary in ``record.json`` and, when
the run logged to W&B, a ``diagnose`` run in its group.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf, open_dict
from scipy.stats import spearmanr

from diq.args import check_minimums, parser
from diq.artifacts import read_json, write_json
from diq.engine.hub import fixture_root
from diq.errors import DiqError


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def _spearman(x, y) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


class RunScores:
    """A scored run: its config, pool (the ids it scored, in order), scores and selection."""

    def __init__(self, run: Path):
        self.dir = Path(run)
        rp = self.dir / "record.json"
        if not rp.exists():
            raise DiqError(f"{rp}: no record.json (the run did not finish)\n  fix: pass a run folder of a complete run")
        self.rec = read_json(rp)
        sp = self.dir / "scores.parquet"
        if not sp.exists() or "scores" not in self.rec:
            raise DiqError(f"{self.dir}: this run computed no scores (strategy {self.rec.get('strategy')!r})\n"
                           f"  fix: diagnose a run of a score-based strategy (diq, influence, quadrant, ...)")
        self.df = pd.read_parquet(sp)
        self.cfg = OmegaConf.create(self.rec["config"])
        from diq.stages.pool.load import load_pool

        by_id = {r["id"]: r for r in load_pool(self.cfg.pool)}
        missing = [i for i in self.df["id"] if i not in by_id]
        if missing:
            raise DiqError(f"{self.dir}: {len(missing)} scored ids are not in the configured pool now, e.g. "
                           f"{missing[:3]}\n  fix: the pool changed since the run; rerun it first")
        self.records = [by_id[i] for i in self.df["id"]]
        self.model_path = self.rec["scores"].get("scoring_model") or self.rec["model_path"]

    def lengths(self) -> np.ndarray:
        from diq.engine.models import load_tokenizer

        tok = load_tokenizer(self.rec["model_path"])
        return np.array([len(tok(r["response"], add_special_tokens=False)["input_ids"]) for r in self.records])

    def dot(self, **overrides) -> np.ndarray:
        """Dot under a changed config (LoRA seed, validation draw or size, projection), through the score cache."""
        from diq.stages.score import compute_scores

        cfg = self.cfg.copy()
        with open_dict(cfg):
            for k, v in overrides.items():
                OmegaConf.update(cfg, k, v, merge=False)
        return np.asarray(compute_scores(["influence"], self.records, self.model_path, cfg, self.dir)["influence"], float)

    def select(self, dot: np.ndarray, fraction: float) -> list[str]:
        from diq.stages.select.budget import budget_k
        from diq.stages.select.strategies import build

        scores = {"influence": dot}
        if "difficulty" in self.df:
            scores["difficulty"] = self.df["difficulty"].to_numpy()
        k = budget_k(fraction, len(self.records))
        sel = self.cfg.selection if self.rec["strategy"] in ("diq", "influence", "quadrant") else \
            OmegaConf.create({"_target_": "diq.stages.select.strategies.TopScore", "name": "influence", "needs": ["influence"]})
        return build(sel).select(self.records, scores, k).ids


def diagnose(run: Path, seeds: int = 3, draws: int = 3, proj_dim: int | None = 1024,
             val_sizes: list[int] | None = None, budgets=(0.01, 0.1)) -> dict:
    """A debug run read its hub datasets from fixtures (``hub_fixtures``): so does its diagnosis."""
    rp = Path(run) / "record.json"
    fixtures = ((read_json(rp).get("config") or {}).get("hub_fixtures") if rp.exists() else None)
    with fixture_root(fixtures):
        return _diagnose(run, seeds, draws, proj_dim, val_sizes, budgets)


def _diagnose(run: Path, seeds: int, draws: int, proj_dim: int | None, val_sizes: list[int] | None, budgets) -> dict:
    rs = RunScores(run)
    base = rs.df["dot"].to_numpy() if "dot" in rs.df else None
    if base is None:
        raise DiqError(f"{run}: no Dot scores in scores.parquet\n  fix: diagnose a run whose strategy uses influence")
    budgets = sorted({float(rs.rec["budget_fraction"]), *map(float, budgets)})
    out: dict = {"run": str(run), "strategy": rs.rec["strategy"], "n_pool": len(rs.records), "budgets": budgets,
                 "stability": {}}

    def block(name: str, variants: dict[str, np.ndarray], ref: np.ndarray):
        res = {"spearman": {v: _spearman(ref, d) for v, d in variants.items()}, "jaccard": {}}
        for b in budgets:
            ref_sel = rs.select(ref, b)
            res["jaccard"][f"{b:g}"] = {v: jaccard(ref_sel, rs.select(d, b)) for v, d in variants.items()}
        out["stability"][name] = res

    lora_seed = int(rs.cfg.train.lora.seed)
    block("lora_init_seed", {f"seed {lora_seed + s}": rs.dot(**{"train.lora.seed": lora_seed + s})
                             for s in range(1, seeds)}, base)
    vseed = int(rs.cfg.scoring.validation.get("seed", rs.cfg.seed))
    block("validation_draw", {f"draw {d}": rs.dot(**{"scoring.validation.seed": vseed + 1000 * d})
                              for d in range(1, draws)}, base)
    if proj_dim:
        block("projection", {f"proj {proj_dim}": rs.dot(**{"scoring.influence.proj_dim": int(proj_dim)})}, base)
    if val_sizes:
        sizes = sorted(set(int(v) for v in val_sizes))
        dots = {v: rs.dot(**{"scoring.validation.per_task": v}) for v in sizes}
        block("validation_size", {f"{v} per task": dots[v] for v in sizes[:-1]}, dots[sizes[-1]])
        out["stability"]["validation_size"]["reference"] = f"{sizes[-1]} per task"
    length = rs.lengths()
    d = rs.df["difficulty"].to_numpy() if "difficulty" in rs.df else None
    loss = rs.df["loss"].to_numpy() if "loss" in rs.df else None
    out["correlations"] = {"dot~length": _spearman(base, length),
                           "dot~difficulty": _spearman(base, d) if d is not None else None,
                           "dot~loss": _spearman(base, loss) if loss is not None else None,
                           "difficulty~length": _spearman(d, length) if d is not None else None}
    if "quadrant" in rs.df:
        comp = {}
        for q in ("Q1", "Q2", "Q3", "Q4"):
            m = (rs.df["quadrant"] == q).to_numpy()
            ex = [{"id": rs.records[i]["id"], "question": rs.records[i]["question"][:160]}
                  for i in np.flatnonzero(m)[:3]]
            comp[q] = {"n": int(m.sum()), "mean_length": float(length[m].mean()) if m.any() else None,
                       "mean_difficulty": float(d[m].mean()) if m.any() and d is not None else None,
                       "mean_dot": float(base[m].mean()) if m.any() else None,
                       "selected": int(rs.df["selected"].to_numpy()[m].sum()), "examples": ex}
        out["quadrants"] = comp
    out["plots"] = _plots(rs, base, d, length, run / "diagnostics")
    return out


def _plots(rs: RunScores, dot, d, length, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    sel = rs.df["selected"].to_numpy()
    paths = []
    for name, y in (("dot_vs_length", dot), ("difficulty_vs_length", d)):
        if y is None:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4), dpi=100)
        ax.scatter(length[~sel], y[~sel], s=9, c="#bbbbbb", label="not selected")
        ax.scatter(length[sel], y[sel], s=14, c="#d62728", label="selected")
        ax.set_xlabel("response length (tokens)")
        ax.set_ylabel("Dot" if name.startswith("dot") else "difficulty D")
        ax.set_xscale("log")
        ax.legend(fontsize=7)
        ax.set_title(f"{rs.rec['experiment']}: {rs.rec['strategy']} {rs.rec['budget_fraction']}", fontsize=9)
        fig.tight_layout()
        p = out / f"{name}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(str(p))
    return paths


def summary_text(res: dict) -> str:
    lines = [f"diagnostics — {res['run']} ({res['strategy']}, {res['n_pool']} samples)", "",
             "stability: Jaccard of the selected ids (Spearman of Dot)"]
    for name, b in res["stability"].items():
        for v, rho in b["spearman"].items():
            jac = "  ".join(f"{bud}: {b['jaccard'][bud][v]:.2f}" for bud in b["jaccard"])
            lines.append(f"  {name:<16} {v:<14} ρ={rho if rho is None else round(rho, 3)}  {jac}")
    lines += ["", "what the scores prefer (Spearman)"]
    lines += [f"  {k:<18} {'—' if v is None else f'{v:+.3f}'}" for k, v in res["correlations"].items()]
    if res.get("quadrants"):
        lines += ["", "quadrants: n, mean length, mean D, mean Dot, selected"]
        for q, c in res["quadrants"].items():
            f = lambda x: "—" if x is None else f"{x:.3g}"  # noqa: E731
            lines.append(f"  {q}: {c['n']:>5}  {f(c['mean_length']):>7}  {f(c['mean_difficulty']):>6}  "
                         f"{f(c['mean_dot']):>10}  {c['selected']}")
    lines += ["", "plots: " + ", ".join(res["plots"])]
    return "\n".join(lines)


def main(argv=None) -> int:
    from diq.logs import cli_logging

    cli_logging()
    ap = parser("diagnose", __doc__)
    ap.add_argument("runs", nargs="+", help="run folders (with record.json and scores.parquet)")
    ap.add_argument("--seeds", type=int, default=3, help="LoRA init seeds, the run's included")
    ap.add_argument("--draws", type=int, default=3, help="validation draws, the run's included")
    ap.add_argument("--proj-dim", type=int, default=1024, help="JL projection compared with exact Dot (0 = skip)")
    ap.add_argument("--val-sizes", default="", help="e.g. 5,10,20,40: DIQ's selection across validation sizes")
    ap.add_argument("--budgets", default="0.01,0.1")
    args = ap.parse_args(argv)
    try:
        sizes = [int(x) for x in args.val_sizes.split(",") if x.strip()]
        budgets = [float(x) for x in args.budgets.split(",") if x.strip()]
        check_minimums(args, {"seeds": 1, "draws": 1})
        if args.proj_dim < 0:
            raise DiqError(f"--proj-dim={args.proj_dim}: a projection size like 1024, or 0 to skip the comparison")
        if any(v < 1 for v in sizes) or not all(0 < b <= 1 for b in budgets):
            raise DiqError(f"--val-sizes={args.val_sizes} --budgets={args.budgets}: validation sizes are positive "
                           f"counts, budgets fractions in (0, 1]\n  fix: e.g. --val-sizes 5,10,20 --budgets 0.01,0.1")
        for run in args.runs:
            res = diagnose(Path(run), args.seeds, args.draws, args.proj_dim or None, sizes, budgets)
            write_json(Path(run) / "diagnostics" / "diagnostics.json", res)
            rp = Path(run) / "record.json"
            rec = read_json(rp)
            rec["diagnostics"] = {"file": str(Path(run) / "diagnostics" / "diagnostics.json"),
                                  "stability": {k: v["jaccard"] for k, v in res["stability"].items()},
                                  "correlations": res["correlations"]}
            write_json(rp, rec)
            _log_wandb(rec, res)
            print(summary_text(res))
    except ValueError as e:
        print(f"error: {e}\n  fix: --val-sizes and --budgets are comma-separated numbers", file=sys.stderr)
        return 2
    except DiqError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


def _log_wandb(rec: dict, res: dict) -> None:
    cfg = OmegaConf.create(rec["config"])
    if cfg.logger.get("mode", "disabled") == "disabled" or not rec.get("wandb"):
        return
    from diq.run.tracking import Tracker

    t = Tracker(cfg.logger, config={"run": res["run"]}, group=rec["experiment"], job_type="diagnose",
                tags=[f"strategy:{rec['strategy']}"], name=f"diagnose-{Path(res['run']).name}", out_dir=res["run"])
    t.summary({f"diagnose/{k}": v for k, v in res["correlations"].items() if v is not None})
    for p in res["plots"]:
        t.image(f"diagnose/{Path(p).stem}", p)
    t.finish(0)


if __name__ == "__main__":
    raise SystemExit(main())

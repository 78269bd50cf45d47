"""``python -m diq.run`` — one run: score the pool, select a subset, fine-tune with LoRA, evaluate, record.

Each stage is content-addressed under ``cache_dir`` (scores, train, eval), so reruns and sweeps fill only
what is missing. The run's own folder gets ``selected_ids.json``, ``record.json`` and the plots.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import evaluate as evaluation
from .artifacts import StageDir, ids_hash, read_json, sha256_file, sha256_obj, write_json
from .budget import budget_k
from .errors import DiqError
from .models import resolve_model
from .pool import load_pool, pool_hash
from .record import git_info, versions
from .selection import get_strategy
from .tracking import Tracker

STAGES = ("score", "select", "train", "eval")
RESULT_KEYS = ("pool", "model", "selection", "budget", "train", "eval", "scoring", "seed")


def config_hash(cfg: DictConfig) -> str:
    c = OmegaConf.to_container(cfg, resolve=True)
    return sha256_obj({k: c.get(k) for k in RESULT_KEYS})


def _budget_tag(f: float) -> str:
    return "full" if float(f) >= 1.0 else f"p{float(f) * 100:g}"


def pipeline(cfg: DictConfig, out_dir: Path, tracker: Tracker) -> dict:
    if cfg.stop_after not in STAGES:
        raise DiqError(f"stop_after={cfg.stop_after!r}; choose one of {', '.join(STAGES)}")
    cache = Path(cfg.cache_dir)
    seconds = {s: 0.0 for s in STAGES}
    rec: dict = {"experiment": cfg.experiment_name, "strategy": cfg.selection.name,
                 "budget_fraction": float(cfg.budget.fraction), "seed": int(cfg.seed), "model": cfg.model.name,
                 "config_hash": config_hash(cfg), "git": git_info(), "versions": versions(),
                 "config": OmegaConf.to_container(cfg, resolve=True), "seconds": seconds,
                 "wandb": tracker.path, "output_dir": str(out_dir)}

    # -- pool and budget
    records = load_pool(cfg.pool)
    rec.update(pool=cfg.pool.name, n_pool_raw=len(records))
    decontam = None
    if cfg.decontaminate != "off":
        from . import decontam as dc

        docs, skipped = dc.benchmark_docs(cfg.eval)
        report = dc.check(records, docs, int(cfg.decontam_ngram))
        records = dc.apply(cfg.decontaminate, "pool", records, report)
        decontam = (cfg.decontaminate, docs, int(cfg.decontam_ngram))
        rec["decontamination"] = {"mode": cfg.decontaminate, "ngram": int(cfg.decontam_ngram),
                                  "benchmarks": {k: len(v) for k, v in docs.items()}, "skipped": skipped,
                                  "pool": report.summary()}
    rec.update(n_pool=len(records), pool_hash=pool_hash(records))
    strat = get_strategy(cfg.selection.name)
    k = len(records) if cfg.selection.name == "full" else budget_k(cfg.budget.fraction, len(records))
    model_path = resolve_model(cfg.model)
    rec["model_path"] = model_path

    # -- score (cached per scorer)
    t = time.time()
    scores = {}
    needs = strat.needs(cfg.selection)
    if cfg.scoring.influence.get("shard_index") is not None and cfg.stop_after != "score":
        raise DiqError(f"scoring.influence.shard_index={cfg.scoring.influence.shard_index} computes one shard only\n"
                       f"  fix: add stop_after=score to shard runs; a later run without shard_index merges them")
    if needs:
        from .scores import compute_scores

        score_model = resolve_model(cfg.scoring.model) if cfg.scoring.get("model") else model_path
        scores, score_info = compute_scores(needs, records, score_model, cfg, out_dir, decontam=decontam)
        if "validation_decontamination" in score_info:
            rec.setdefault("decontamination", {})["validation"] = score_info.pop("validation_decontamination")
        score_info["scoring_model"] = score_model
        rec["scores"] = score_info
    seconds["score"] = time.time() - t
    if cfg.stop_after == "score":
        return rec

    # -- select
    t = time.time()
    sel = strat.fn(records, scores, k, cfg.selection)
    if len(sel.ids) != k or len(set(sel.ids)) != k:
        raise RuntimeError(f"strategy {cfg.selection.name} returned {len(sel.ids)} ids ({len(set(sel.ids))} unique), "
                           f"expected {k}")
    ids_file = write_json(out_dir / "selected_ids.json", sel.ids)
    rec.update(n_selected=len(sel.ids), selected_ids_path=str(ids_file), selected_ids_sha256=sha256_file(ids_file),
               selection_hash=ids_hash(sel.ids), selection_info=sel.info)
    seconds["select"] = time.time() - t
    tracker.summary({"n_selected": len(sel.ids), "selection_hash": rec["selection_hash"],
                     **{f"selection/{k_}": v for k_, v in sel.info.items() if isinstance(v, (int, float, str))}})
    if "influence" in scores and "difficulty" in scores and "difficulty_threshold" in sel.info:
        import numpy as np

        from .quadrants import scatter

        chosen = set(sel.ids)
        png = scatter(out_dir / "quadrants.png", np.asarray(scores["difficulty"]), np.asarray(scores["influence"]),
                      np.array([r["id"] in chosen for r in records]), sel.info,
                      f"{cfg.experiment_name}: {cfg.selection.name} k={k} of {len(records)}")
        rec["plots"] = [png]
        tracker.image("selection/quadrants", png)
        tracker.summary({f"selection/{q}_size": v for q, v in sel.info["quadrant_sizes"].items()})
        tracker.summary({"selection/difficulty_threshold": sel.info["difficulty_threshold"],
                         "selection/influence_threshold": sel.info["influence_threshold"]})
    if cfg.stop_after == "select":
        return rec

    # -- train (cached by model, training config and the selected ids)
    t = time.time()
    by_id = {r["id"]: r for r in records}
    train_cfg = OmegaConf.to_container(cfg.train, resolve=True)
    stage = StageDir(cache, "train", {"model": model_path, "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
                                      "train": train_cfg, "selection_hash": rec["selection_hash"],
                                      "pool_hash": rec["pool_hash"]})
    with stage.lock():
        if stage.done:
            train_info = stage.meta()["result"]
            print(f"[diq] train: reusing {stage.path}", flush=True)
        else:
            from .train import finetune, finetune_multiprocess

            stage.begin()
            subset = [by_id[i] for i in sel.ids]
            if int(cfg.train.get("num_processes") or 1) > 1:
                train_info = finetune_multiprocess(model_path, subset, cfg.train, stage.path,
                                                   int(cfg.train.num_processes))
            else:
                train_info = finetune(model_path, subset, cfg.train, stage.path,
                                      on_step=lambda r: tracker.log({"train/loss": r["loss"], "train/lr": r["lr"]},
                                                                    step=r["step"]))
            stage.finish({"result": train_info})
    rec["train"] = {**train_info, "cache": str(stage.path)}
    seconds["train"] = time.time() - t
    if cfg.stop_after == "train":
        return rec

    # -- eval (cached by the adapter's stage key and the eval config)
    t = time.time()
    ev_stage = StageDir(cache, "eval", {"model": model_path, "adapter": stage.key,
                                        "eval": OmegaConf.to_container(cfg.eval, resolve=True)})
    with ev_stage.lock():
        if ev_stage.done:
            ev = read_json(ev_stage.path / "metrics.json")
            print(f"[diq] eval: reusing {ev_stage.path}", flush=True)
        else:
            ev_stage.begin()
            ev = evaluation.evaluate(model_path, train_info["adapter"], cfg.eval, samples_dir=ev_stage.path / "samples")
            write_json(ev_stage.path / "metrics.json", ev)
            ev_stage.finish()
    rec["eval"] = {**ev, "cache": str(ev_stage.path)}
    rec["metrics"] = {name: t_["value"] for name, t_ in ev["tasks"].items()}
    rec["averages"] = ev["averages"]
    seconds["eval"] = time.time() - t
    tracker.summary({**{f"eval/{n}": v for n, v in rec["metrics"].items()},
                     **{f"eval/{n}": v for n, v in ev["averages"].items() if v is not None}})
    tracker.table("eval/tasks", ["task", "category", "metric", "value", "n"],
                  [[n, t_["category"], t_["metric"], t_["value"], t_["n"]] for n, t_ in ev["tasks"].items()])
    return rec


def summary_text(rec: dict) -> str:
    lines = ["", "=" * 72, f"diq run — experiment {rec['experiment']}  ({rec.get('status', '?')})",
             f"  strategy {rec['strategy']}  budget {rec['budget_fraction']}  seed {rec['seed']}  model {rec['model']}",
             f"  pool {rec.get('pool')}: {rec.get('n_pool', '?')} samples → selected {rec.get('n_selected', '-')}"
             f"  (selection hash {str(rec.get('selection_hash', '-'))[:12]})"]
    if rec.get("train"):
        tr = rec["train"]
        lines.append(f"  train: {tr['steps']} steps, loss {tr['mean_loss_first_step']:.4f} → {tr['final_loss']:.4f}")
    for name, v in (rec.get("metrics") or {}).items():
        t = rec["eval"]["tasks"][name]
        lines.append(f"  eval {name:<28} {t['metric']:<22} {v:.4f}  (n={t['n']}, category {t['category']})")
    if rec.get("averages"):
        lines.append("  " + "  ".join(f"{k} {v * 100:.2f}" if v is not None else f"{k} -" for k, v in rec["averages"].items()))
    lines.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in rec["seconds"].items()) +
                 f"  (total {rec.get('seconds_total', 0):.1f})")
    name = "record.json" if rec.get("status") == "complete" else "record.failed.json"
    lines.append(f"  record: {rec['output_dir']}/{name}   W&B: {rec.get('wandb') or 'disabled'}")
    if rec.get("error"):
        lines.append(f"  ERROR: {rec['error']}")
    lines.append("=" * 72)
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict:
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.get("output_dir", "."))
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tags = [f"strategy:{cfg.selection.name}", f"budget:{_budget_tag(cfg.budget.fraction)}", f"model:{cfg.model.name}",
            f"seed:{cfg.seed}", f"git:{(git_info()['sha'] or 'none')[:8]}"]
    tracker = Tracker(cfg.logger, config=OmegaConf.to_container(cfg, resolve=True), group=cfg.experiment_name,
                      job_type=cfg.stop_after, tags=tags, name=f"{cfg.selection.name}-{_budget_tag(cfg.budget.fraction)}-s{cfg.seed}",
                      out_dir=str(out_dir))
    rec: dict = {"experiment": cfg.experiment_name, "strategy": cfg.selection.name, "budget_fraction": cfg.budget.fraction,
                 "seed": cfg.seed, "model": cfg.model.name, "seconds": {s: 0.0 for s in STAGES}, "output_dir": str(out_dir),
                 "wandb": tracker.path}
    exit_code = 1
    try:
        rec = pipeline(cfg, out_dir, tracker)
        rec["status"] = "complete"
        exit_code = 0
    except DiqError as e:
        rec.update(status="failed", error=str(e))
        raise
    except BaseException as e:
        rec.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:])
        raise
    finally:
        rec["seconds_total"] = time.time() - t0
        write_json(out_dir / ("record.json" if rec["status"] == "complete" else "record.failed.json"), rec)
        tracker.summary({"seconds_total": rec["seconds_total"], "status": rec["status"]})
        tracker.finish(exit_code)
        print(summary_text(rec), flush=True)
    return rec


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    try:
        rec = run(cfg)
    except DiqError as e:
        print(f"\nerror: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    return rec.get("averages", {}).get("AvgA")


if __name__ == "__main__":
    main()

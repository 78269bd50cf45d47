"""``python -m diq.run`` — one run: score the pool, select a subset, fine-tune with LoRA, evaluate, record.

Each stage is content-addressed under ``cache_dir`` (scores, train, eval), so reruns and sweeps fill only
what is missing. The run's own folder gets ``selected_ids.json``, ``record.json`` and the plots.
"""

from __future__ import annotations

import logging
import os
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

STAGES = ("score", "select", "train", "dpo", "eval")
RESULT_KEYS = ("pool", "model", "selection", "budget", "train", "eval", "scoring", "seed")

log = logging.getLogger(__name__)


def _with_dpo(c: dict, d: dict) -> dict:
    """The DPO stage and its preference data are part of a result only when the stage runs (so hashes of SFT-only
    runs are what they were before the stage existed)."""
    if (c.get("dpo") or {}).get("enabled"):
        d.update(dpo=c["dpo"], preference=c.get("preference"))
    return d


def config_hash(cfg: DictConfig) -> str:
    c = OmegaConf.to_container(cfg, resolve=True)
    return sha256_obj(_with_dpo(c, {k: c.get(k) for k in RESULT_KEYS}))


def cell_hash(cfg: DictConfig) -> str:
    """The configuration without its seed (seed-derived values included): runs that differ only by seed share it,
    and the report averages exactly those."""
    c = OmegaConf.to_container(cfg, resolve=False)
    c["seed"] = 0
    c = OmegaConf.to_container(OmegaConf.create(c), resolve=True)
    if c["selection"]["name"] == "none":  # the base model's row depends on the model and the evaluation only
        return sha256_obj(_with_dpo(c, {"selection": "none", "model": c.get("model"), "eval": c.get("eval")}))
    return sha256_obj(_with_dpo(c, {k: c.get(k) for k in RESULT_KEYS if k != "seed"}))


NOT_A_CELL_KEY = ("seed", "experiment", "debug", "cache_dir", "logger", "hydra", "hub_fixtures", "stop_after")


def cell_of(overrides: list[str]) -> dict[str, str]:
    """The keys this run sets on the command line or through its sweep (Hydra's task overrides), seed excluded."""
    out = {}
    for o in overrides:
        k, _, v = o.lstrip("+~").partition("=")
        if k.split(".")[0].split("/")[0] not in NOT_A_CELL_KEY:
            out[k] = v
    return out


def _hydra_overrides() -> tuple[list[str], str | None]:
    if not HydraConfig.initialized():
        return [], None
    hc = HydraConfig.get()
    task = list(hc.overrides.task)
    mode = "multirun" if str(hc.mode) in ("RunMode.MULTIRUN", "MULTIRUN") else "run"
    return task, mode


def _scores_frame(records: list[dict], scores: dict, selected: list[str], info: dict):
    """Per-sample scores of this run: id, every score computed, quadrant (where DIQ thresholds exist), selected."""
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({"id": [r["id"] for r in records]})
    for name, arr in scores.items():
        if isinstance(arr, dict):
            for sub_, a in arr.items():
                df[f"{name}_{sub_}"] = np.asarray(a, dtype=float)
        else:
            df[name if name != "influence" else "dot"] = np.asarray(arr, dtype=float)
    if "difficulty_threshold" in info and "influence" in scores and "difficulty" in scores:
        from .quadrants import QUADRANTS, assign

        q, _, _ = assign(np.asarray(scores["difficulty"], float), np.asarray(scores["influence"], float),
                         float(info["tau_d"]))
        df["quadrant"] = np.asarray(QUADRANTS)[q]
    rank = {i: n for n, i in enumerate(selected)}
    df["selected"] = df["id"].map(lambda i: i in rank)
    df["selection_rank"] = df["id"].map(lambda i: rank.get(i, -1))
    return df


def _budget_tag(f: float) -> str:
    return "full" if float(f) >= 1.0 else f"p{float(f) * 100:g}"


def pipeline(cfg: DictConfig, out_dir: Path, tracker: Tracker, rec: dict) -> dict:
    """Fills ``rec`` in place as stages finish, so a failure leaves everything known in record.failed.json."""
    if cfg.stop_after not in STAGES:
        raise DiqError(f"stop_after={cfg.stop_after!r}; choose one of {', '.join(STAGES)}")
    cache = Path(cfg.cache_dir)
    seconds = rec["seconds"]
    computed = rec.setdefault("seconds_computed", {s: 0.0 for s in STAGES})
    rec.update(config_hash=config_hash(cfg), cell_hash=cell_hash(cfg), git=git_info(), versions=versions(),
               config=OmegaConf.to_container(cfg, resolve=True))

    # -- everything that can be checked before compute: the evaluation (task names, files, every item); the config
    #    itself was validated by run() before anything was written
    eval_specs = evaluation.preflight(cfg.eval)
    rec["eval_plan"] = {s["name"]: {"category": s.get("category"),
                                    "source": (s.get("bundle") or {}).get("source") or (s.get("local") or {}).get("path")
                                    or s["name"]} for s in eval_specs}
    if cfg.get("hub_fixtures"):
        rec["hub_fixtures"] = str(cfg.hub_fixtures)

    pref = None
    if cfg.dpo.get("enabled"):  # the preference pairs are read and checked before any compute
        from .preference import load_preference

        pref = load_preference(cfg.preference)
        rec["preference"] = pref[2]

    # -- pool and budget
    records = load_pool(cfg.pool)
    origins = None
    if cfg.pool.get("planted"):  # experiments/planted.yaml: known in-domain and corrupted samples, origins hidden
        from .planted import plant
        from .validation import build_validation

        val_ids = {r["id"] for r in build_validation(cfg.scoring.validation, int(cfg.seed), cfg.eval)[0]}
        records, origins = plant(records, cfg.pool.planted, val_ids)
        write_json(out_dir / "planted_origins.json", origins)
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
    log.info(f"pool {cfg.pool.name}: {len(records)} samples (hash {rec['pool_hash'][:12]}); model {cfg.model.name}")
    strat = get_strategy(cfg.selection.name)
    base_only = cfg.selection.name == "none"
    k = len(records) if cfg.selection.name == "full" else 0 if base_only else budget_k(cfg.budget.fraction, len(records))
    if base_only:
        rec["budget_fraction"] = 0.0
    if cfg.selection.name == "full":
        rec["budget_fraction"] = 1.0
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
        computed["score"] = sum(float(v.get("seconds") or 0) for v in score_info.values() if isinstance(v, dict))
    seconds["score"] = time.time() - t
    if cfg.stop_after == "score":
        return rec

    # -- the base model: no scoring, no training, only its evaluation (after DPO, with dpo=trl)
    if base_only:
        rec.update(n_selected=0, selection_hash=None)
        adapter, stage_key = None, None
        if cfg.stop_after in ("select", "train"):
            return rec
    else:
        adapter, stage_key = _select_and_train(cfg, out_dir, tracker, rec, records, scores, strat, k, cache, origins)
        if adapter is None:
            return rec
    eval_model = None
    if pref is not None:
        adapter, stage_key, eval_model = _dpo(cfg, tracker, rec, adapter, stage_key, cache, pref)
    if cfg.stop_after == "dpo":
        return rec
    _evaluate(cfg, tracker, rec, adapter, stage_key, cache, eval_model)
    return rec


def _dpo(cfg, tracker, rec, adapter, stage_key, cache, pref):
    """DPO after SFT (diq/dpo.py), cached by the SFT stage key, the DPO config and the preference data."""
    pairs, held, info = pref
    t = time.time()
    stage = StageDir(cache, "dpo", {"model": rec["model_path"], "sft": stage_key,
                                    "dpo": OmegaConf.to_container(cfg.dpo, resolve=True),
                                    "preference": info["hash"], "heldout": info["heldout_hash"]})
    with stage.lock():
        if stage.done:
            res = stage.meta()["result"]
            log.info(f"dpo: reusing {stage.path}")
        else:
            from .dpo import run_dpo

            stage.begin()
            off = int((rec.get("train") or {}).get("steps") or 0)  # W&B steps keep rising after SFT's
            res = run_dpo(rec["model_path"], adapter, pairs, held, cfg.dpo, stage.path,
                          on_log=lambda d, step: tracker.log(d, step=off + step))
            stage.finish({"result": res})
    rec["dpo"] = {k: v for k, v in res.items() if k != "log_history"} | {"cache": str(stage.path)}
    rec["seconds"]["dpo"] = time.time() - t
    rec["seconds_computed"]["dpo"] = float(res.get("seconds") or rec["seconds"]["dpo"])
    hb, ha = res["heldout_before"], res["heldout_after"]
    tracker.summary({"dpo/steps": res["steps"], "dpo/final_loss": res["final_loss"],
                     "dpo/heldout_margin_before": hb["margin"], "dpo/heldout_margin_after": ha["margin"]})
    return res["adapter"], stage.key, res["model"]


def _select_and_train(cfg, out_dir, tracker, rec, records, scores, strat, k, cache, origins=None):
    seconds, computed = rec["seconds"], rec["seconds_computed"]
    model_path = rec["model_path"]
    t = time.time()
    sel = strat.fn(records, scores, k, cfg.selection)
    if len(sel.ids) != k or len(set(sel.ids)) != k:
        raise RuntimeError(f"strategy {cfg.selection.name} returned {len(sel.ids)} ids ({len(set(sel.ids))} unique), "
                           f"expected {k}")
    ids_file = write_json(out_dir / "selected_ids.json", sel.ids)
    rec.update(n_selected=len(sel.ids), selected_ids_path=str(ids_file), selected_ids_sha256=sha256_file(ids_file),
               selection_hash=ids_hash(sel.ids), selection_info=sel.info)
    if origins is not None:
        from .planted import measure

        kept = {r["id"] for r in records}  # after decontamination
        rec["planted"] = measure(sel.ids, {i: o for i, o in origins.items() if i in kept})
        tracker.summary({f"planted/{k_}": v for k_, v in rec["planted"].items() if isinstance(v, (int, float))})
    sc = _scores_frame(records, scores, sel.ids, sel.info)
    sc_path = out_dir / "scores.parquet"
    sc.to_parquet(sc_path.with_suffix(".parquet.tmp"), index=False)
    os.replace(sc_path.with_suffix(".parquet.tmp"), sc_path)
    rec["scores_file"] = str(sc_path)
    tracker.artifact(f"selection-{rec['selection_hash'][:12]}", "selection", [ids_file, sc_path])
    seconds["select"] = computed["select"] = time.time() - t
    log.info(f"selected {len(sel.ids)} of {len(records)} with {cfg.selection.name} (hash {rec['selection_hash'][:12]})")
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
        return None, None

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
            log.info(f"train: reusing {stage.path}")
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
    log.info(f"train: {train_info.get('steps')} steps, final loss {train_info.get('final_loss')} ({stage.path})")
    seconds["train"] = time.time() - t
    computed["train"] = float(train_info.get("seconds") or seconds["train"])
    if cfg.stop_after == "train":
        return None, None
    return train_info["adapter"], stage.key


def _evaluate(cfg, tracker, rec, adapter, stage_key, cache, model_path=None):
    """Evaluation, cached by the adapter's stage key (None = the base model) and the eval config. ``model_path``:
    a full model to evaluate instead of the run's (DPO's stack mode saves one)."""
    seconds, computed = rec["seconds"], rec["seconds_computed"]
    model_path = model_path or rec["model_path"]
    t = time.time()
    ev_stage = StageDir(cache, "eval", {"evaluate_version": 2,  # 2: answer-rule and letter statistics per item
                                        "model": model_path, "adapter": stage_key,
                                        "eval": OmegaConf.to_container(cfg.eval, resolve=True)})
    with ev_stage.lock():
        if ev_stage.done:
            ev = read_json(ev_stage.path / "metrics.json")
            log.info(f"eval: reusing {ev_stage.path}")
        else:
            ev_stage.begin()
            ev = evaluation.evaluate(model_path, adapter, cfg.eval, samples_dir=ev_stage.path / "samples")
            write_json(ev_stage.path / "metrics.json", ev)
            ev_stage.finish()
    rec["eval"] = {**ev, "cache": str(ev_stage.path)}
    rec["metrics"] = {name: t_["value"] for name, t_ in ev["tasks"].items()}
    rec["averages"] = ev["averages"]
    rec["averages_n"] = ev.get("averages_n")
    seconds["eval"] = time.time() - t
    computed["eval"] = float(ev.get("seconds") or seconds["eval"])
    rec["per_item"] = str(ev_stage.path / "samples")
    log.info("eval: " + ", ".join(f"{n} {v:.4f}" for n, v in rec["metrics"].items()) + f" (per item: {rec['per_item']})")
    tracker.summary({**{f"eval/{n}": v for n, v in rec["metrics"].items()},
                     **{f"eval/{n}": v for n, v in ev["averages"].items() if v is not None}})
    tracker.table("eval/tasks", ["task", "category", "metric", "value", "n"],
                  [[n, t_["category"], t_["metric"], t_["value"], t_["n"]] for n, t_ in ev["tasks"].items()])


def summary_text(rec: dict) -> str:
    lines = ["", "=" * 72, f"diq run — experiment {rec['experiment']}  ({rec.get('status', '?')})",
             f"  strategy {rec['strategy']}  budget {rec['budget_fraction']}  seed {rec['seed']}  model {rec['model']}",
             f"  pool {rec.get('pool')}: {rec.get('n_pool', '?')} samples → selected {rec.get('n_selected', '-')}"
             f"  (selection hash {str(rec.get('selection_hash', '-'))[:12]})"]
    if rec.get("train"):
        tr = rec["train"]
        lines.append(f"  train: {tr['steps']} steps, loss {tr['mean_loss_first_step']:.4f} → {tr['final_loss']:.4f}")
    if rec.get("dpo"):
        d, hb, ha = rec["dpo"], rec["dpo"]["heldout_before"], rec["dpo"]["heldout_after"]
        lines.append(f"  dpo: {d['steps']} steps on {d['n_pairs_used']} pairs, loss {d['first_loss']:.4f} → "
                     f"{d['final_loss']:.4f}; held-out margin {hb['margin']:.3f} → {ha['margin']:.3f} (n={ha['n']})"
                     if hb["n"] else f"  dpo: {d['steps']} steps on {d['n_pairs_used']} pairs (no held-out pairs)")
        if d.get("n_dropped_prompt_too_long"):
            lines.append(f"  WARNING: {d['n_dropped_prompt_too_long']} preference pairs dropped: prompt longer than "
                         f"dpo.max_length")
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


def _on_sigterm(signum, frame):  # Slurm and `kill` send SIGTERM: leave a record.failed.json like any failure
    raise SystemExit(128 + signum)


def run(cfg: DictConfig) -> dict:
    import datetime
    import signal

    from .validate import KEYLIKE, validate

    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.get("output_dir", "."))
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    overrides, mode = _hydra_overrides()
    overrides = [o if not KEYLIKE.match(o.partition("=")[2]) else f"{o.partition('=')[0]}=<redacted>" for o in overrides]
    try:  # before any W&B run or tag exists: a bad value (or a key pasted as a name) stops here
        validate(cfg)
    except DiqError as e:
        for stale in ("record.json",):
            (out_dir / stale).unlink(missing_ok=True)
        fail = {"experiment": cfg.get("experiment_name"), "strategy": str(cfg.selection.get("name")),
                "budget_fraction": None, "seed": None, "model": str(cfg.model.get("name")), "status": "failed",
                "error": str(e), "cell": cell_of(overrides), "overrides": overrides, "output_dir": str(out_dir),
                "stage": "config validation (nothing was computed)"}
        write_json(out_dir / "record.failed.json", fail)
        (out_dir / "INCOMPLETE").write_text("this run did not start: its config is invalid; see record.failed.json\n")
        raise
    budget_tag = "base" if cfg.selection.name == "none" else _budget_tag(cfg.budget.fraction)
    tags = [f"strategy:{cfg.selection.name}", f"budget:{budget_tag}", f"model:{cfg.model.name}",
            f"seed:{cfg.seed}", f"git:{(git_info()['sha'] or 'none')[:8]}"]
    tracker = Tracker(cfg.logger, config=OmegaConf.to_container(cfg, resolve=True), group=cfg.experiment_name,
                      job_type="pipeline", tags=tags, name=f"{cfg.selection.name}-{budget_tag}-s{cfg.seed}",
                      out_dir=str(out_dir))
    cell = cell_of(overrides)
    rec: dict = {"experiment": cfg.experiment_name, "strategy": cfg.selection.name, "budget_fraction": cfg.budget.fraction,
                 "seed": cfg.seed, "model": cfg.model.name, "seconds": {s: 0.0 for s in STAGES}, "output_dir": str(out_dir),
                 "wandb": tracker.path, "cell": cell, "overrides": overrides,
                 "command": "python -m diq.run" + (" -m" if mode == "multirun" else "") +
                 "".join(f" {o}" for o in overrides) if overrides else None,
                 "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    for stale in ("record.json", "record.failed.json"):  # a rerun into a used folder leaves only its own record
        (out_dir / stale).unlink(missing_ok=True)
    marker = out_dir / "INCOMPLETE"  # removed only when record.json is written: a killed run is never taken as done
    marker.write_text("this run has not finished (or was killed); see record.failed.json if there is one\n")
    exit_code = 1
    old_term = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    old_fixtures = os.environ.get("DIQ_HUB_FIXTURES")
    if cfg.get("hub_fixtures"):  # for this run only: every hub read (datasets, lm-eval tasks) goes to the fixtures
        os.environ["DIQ_HUB_FIXTURES"] = str(cfg.hub_fixtures)
    try:
        pipeline(cfg, out_dir, tracker, rec)
        rec["status"] = "complete"
        exit_code = 0
    except DiqError as e:
        rec.update(status="failed", error=str(e))
        raise
    except BaseException as e:
        rec.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:])
        raise
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if old_fixtures is None:
            os.environ.pop("DIQ_HUB_FIXTURES", None)
        else:
            os.environ["DIQ_HUB_FIXTURES"] = old_fixtures
        rec["seconds_total"] = time.time() - t0
        rec["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        write_json(out_dir / ("record.json" if rec["status"] == "complete" else "record.failed.json"), rec)
        if rec["status"] == "complete":
            marker.unlink(missing_ok=True)
        tracker.summary({"seconds_total": rec["seconds_total"], "status": rec["status"],
                         **{f"seconds/{k}": v for k, v in rec["seconds"].items()},
                         **{f"seconds_computed/{k}": v for k, v in (rec.get("seconds_computed") or {}).items()}})
        tracker.finish(exit_code)
        print(summary_text(rec), flush=True)
    return rec


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    """One run. In a sweep (multirun) a failed cell never stops the others: its record.failed.json says why, and the
    sweep's end (diq.callbacks) lists the failed cells and exits non-zero."""
    multirun = HydraConfig.initialized() and _hydra_overrides()[1] == "multirun"
    try:
        rec = run(cfg)
    except KeyboardInterrupt:  # Ctrl-C: what was known is in record.failed.json; no traceback
        print("\ninterrupted (SIGINT): finished stages stay cached; record.failed.json says what was known",
              file=sys.stderr, flush=True)
        sys.exit(130)
    except DiqError as e:
        print(f"\nerror: {e}", file=sys.stderr, flush=True)
        if multirun:
            return None
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001 - in a sweep, a crash is recorded (record.failed.json) and the sweep goes on
        if multirun:
            traceback.print_exc()
            print(f"\nerror in this cell: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            return None
        raise
    return (rec.get("averages") or {}).get("AvgA")


if __name__ == "__main__":
    main()

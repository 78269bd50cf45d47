"""``python -m diq.run`` (``diq run``) — one run: score the pool, select a subset, fine-tune with LoRA, evaluate, record.

This module is the run's frame: config validation, the W&B run, the record (``record.json``, or
``record.failed.json`` with everything known when anything fails, Ctrl-C and SIGTERM included) and the summary. The
stages themselves are ``diq.run.pipeline`` → ``diq.stages``; each is content-addressed under ``cache_dir`` (scores,
train, dpo, eval), so reruns and sweeps fill only what is missing.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from diq import CONF
from diq.artifacts import reuse_from, write_json
from diq.config import schema as _schemas  # noqa: F401 - registers the typed config schemas (diq/config/schema.py)
from diq.engine.hub import fixture_root
from diq.errors import DiqError, DiskFull, disk_full
from diq.record import RunRecord
from diq.run.pipeline import (  # noqa: F401 - the run's hashes, re-exported
    PLAN,
    STAGES,
    cell_hash,
    config_hash,
    pipeline,
)
from diq.run.provenance import git_info
from diq.run.tracking import Tracker
from diq.stages.select.strategies import build as build_strategy

log = logging.getLogger(__name__)


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


def _budget_tag(f: float) -> str:
    return "full" if float(f) >= 1.0 else f"p{float(f) * 100:g}"


def summary_text(rec: RunRecord | dict) -> str:
    """The short summary a run ends with (a record or its JSON form)."""
    if isinstance(rec, dict):
        rec = RunRecord.from_json(rec)
    pool, sel, ev = rec.stages.pool, rec.stages.select, rec.stages.eval
    n_pool = pool.n_pool if "n_pool" in pool.written() else "?"
    n_sel = sel.n_selected if "n_selected" in sel.written() else "-"
    sel_hash = str(sel.selection_hash if "selection_hash" in sel.written() else "-")[:12]
    lines = ["", "=" * 72, f"diq run — experiment {rec.experiment}  ({rec.status or '?'})",
             f"  strategy {rec.strategy}  budget {rec.budget_fraction}  seed {rec.seed}  model {rec.model}",
             f"  pool {pool.pool}: {n_pool} samples → selected {n_sel}  (selection hash {sel_hash})"]
    tr = rec.stages.train.train
    if tr:
        lines.append(f"  train: {tr['steps']} steps, loss {tr['mean_loss_first_step']:.4f} → {tr['final_loss']:.4f}")
    d = rec.stages.dpo.dpo
    if d:
        hb, ha = d["heldout_before"], d["heldout_after"]
        lines.append(f"  dpo: {d['steps']} steps on {d['n_pairs_used']} pairs, loss {d['first_loss']:.4f} → "
                     f"{d['final_loss']:.4f}; held-out margin {hb['margin']:.3f} → {ha['margin']:.3f} (n={ha['n']})"
                     if hb["n"] else f"  dpo: {d['steps']} steps on {d['n_pairs_used']} pairs (no held-out pairs)")
        if d.get("n_dropped_prompt_too_long"):
            lines.append(f"  WARNING: {d['n_dropped_prompt_too_long']} preference pairs dropped: prompt longer than "
                         f"dpo.max_length")
    for name, v in (ev.metrics or {}).items():
        t = ev.eval["tasks"][name]
        lines.append(f"  eval {name:<28} {t['metric']:<22} {v:.4f}  (n={t['n']}, category {t['category']})")
    if ev.averages:
        lines.append("  " + "  ".join(f"{k} {v * 100:.2f}" if v is not None else f"{k} -" for k, v in ev.averages.items()))
    lines.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in rec.seconds.items()) +
                 f"  (total {rec.seconds_total or 0:.1f})")
    name = "record.json" if rec.status == "complete" else "record.failed.json"
    lines.append(f"  record: {rec.output_dir}/{name}   W&B: {rec.wandb or 'disabled'}")
    if rec.wandb_fallback:
        lines.append(f"  W&B was unreachable ({rec.wandb_fallback['reason']}): logged offline; sync later: "
                     f"{rec.wandb_fallback['sync']}")
    if rec.error:
        lines.append(f"  ERROR: {rec.error}")
    lines.append("=" * 72)
    return "\n".join(lines)


def _on_sigterm(signum, frame):  # Slurm and `kill` send SIGTERM: leave a record.failed.json like any failure
    raise SystemExit(128 + signum)


def run(cfg: DictConfig) -> dict:
    """One run; returns its record's JSON form (``record.json``)."""
    import datetime
    import signal

    from diq.config.checks import KEYLIKE
    from diq.run.validate import validate

    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(cfg.get("output_dir", "."))
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    overrides, mode = _hydra_overrides()
    secrets = {o.partition("=")[2] for o in overrides if KEYLIKE.match(o.partition("=")[2])}
    overrides = [o if not KEYLIKE.match(o.partition("=")[2]) else f"{o.partition('=')[0]}=<redacted>" for o in overrides]
    _scrub(out_dir, secrets)
    try:  # before any W&B run or tag exists: a bad value (or a key pasted as a name) stops here
        validate(cfg)
    except DiqError as e:
        for stale in ("record.json",):
            (out_dir / stale).unlink(missing_ok=True)
        fail = RunRecord()
        fail.update(experiment=cfg.get("experiment_name"), strategy=str(cfg.selection.get("name")),
                    budget_fraction=None, seed=None, model=str(cfg.model.get("name")), status="failed", error=str(e),
                    cell=cell_of(overrides), overrides=overrides, output_dir=str(out_dir),
                    stage="config validation (nothing was computed)")
        write_json(out_dir / "record.failed.json", fail.to_json())
        (out_dir / "INCOMPLETE").write_text("this run did not start: its config is invalid; see record.failed.json\n")
        raise
    budget_tag = "base" if not build_strategy(cfg.selection).trains else _budget_tag(cfg.budget.fraction)
    tags = [f"strategy:{cfg.selection.name}", f"budget:{budget_tag}", f"model:{cfg.model.name}",
            f"seed:{cfg.seed}", f"git:{(git_info()['sha'] or 'none')[:8]}"]
    tracker = Tracker(cfg.logger, config=OmegaConf.to_container(cfg, resolve=True), group=cfg.experiment_name,
                      job_type="pipeline", tags=tags, name=f"{cfg.selection.name}-{budget_tag}-s{cfg.seed}",
                      out_dir=str(out_dir))
    cell = cell_of(overrides)
    rec = RunRecord()
    rec.update(experiment=cfg.experiment_name, strategy=cfg.selection.name, budget_fraction=cfg.budget.fraction,
               seed=cfg.seed, model=cfg.model.name, seconds={s.name: 0.0 for s in PLAN}, output_dir=str(out_dir),
               wandb=tracker.path)
    if tracker.fallback:
        rec.wandb_fallback = {"reason": tracker.fallback, "sync": tracker.sync_command}
    rec.update(cell=cell, overrides=overrides,
               command="python -m diq.run" + (" -m" if mode == "multirun" else "") +
               "".join(f" {o}" for o in overrides) if overrides else None,
               started_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
    for stale in ("record.json", "record.failed.json"):  # a rerun into a used folder leaves only its own record
        (out_dir / stale).unlink(missing_ok=True)
    marker = out_dir / "INCOMPLETE"  # removed only when record.json is written: a killed run is never taken as done
    marker.write_text("this run has not finished (or was killed); see record.failed.json if there is one\n")
    exit_code = 1
    old_term = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:  # for this run only: every hub read (datasets, lm-eval tasks) goes to the fixtures, if it names any
        with reuse_from(cfg.get("cache_from")), fixture_root(cfg.get("hub_fixtures")):
            pipeline(cfg, out_dir, tracker, rec)
        rec.status = "complete"
        rec.unset("stage")
        exit_code = 0
    except DiqError as e:
        rec.update(status="failed", error=str(e))
        raise
    except BaseException as e:
        full = disk_full(e)
        if full is not None:
            err = _disk_full_error(full, rec, cfg, out_dir)
            rec.update(status="failed", error=str(err))
            raise err from None
        rec.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:])
        raise
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        rec.seconds_total = time.time() - t0
        rec.finished_at = datetime.datetime.now(datetime.timezone.utc).isoformat()
        try:
            write_json(out_dir / ("record.json" if rec.status == "complete" else "record.failed.json"), rec.to_json())
        except OSError as e:  # a full disk: say so, and keep the error that stopped the run
            print(f"\nwarning: could not write the run's record in {out_dir}: {e}", file=sys.stderr, flush=True)
            if rec.status == "complete":
                rec.update(status="failed", error=f"the record could not be written: {e}")
                raise DiskFull(f"the run finished but its record could not be written in {out_dir}: {e}\n  fix: free "
                               f"space there and rerun the same command (every stage is cached: it only writes the "
                               f"record)") from None
        if rec.status == "complete":
            marker.unlink(missing_ok=True)
        tracker.summary({"seconds_total": rec.seconds_total, "status": rec.status,
                         **{f"seconds/{k}": v for k, v in rec.seconds.items()},
                         **{f"seconds_computed/{k}": v for k, v in (rec.seconds_computed or {}).items()}})
        tracker.finish(exit_code)
        print(summary_text(rec), flush=True)
    return rec.to_json()


def _disk_full_error(exc: BaseException, rec: RunRecord, cfg, out_dir: Path) -> DiskFull:
    """The named error for a write that failed on a full disk: where, which stage, what is kept, and the fix."""
    import shutil

    stage = rec.stage or "?"
    path = getattr(exc, "filename", None)
    order = ["pool", *STAGES]
    before = [s for s in order[1:order.index(stage)] if s != "dpo" or rec.stages.dpo.dpo] if stage in order else []
    free = []
    for d in dict.fromkeys([str(cfg.cache_dir), str(out_dir)]):
        try:
            free.append(f"{d}: {shutil.disk_usage(d).free / 2**20:.0f} MiB free")
        except OSError:
            pass
    return DiskFull(f"the disk is full (or a file-size limit was reached) while the {stage} stage was writing"
                    f"{' ' + str(path) if path else ''}: {exc}\n  ({'; '.join(free)})\n  kept: the stages finished "
                    f"before it ({', '.join(before) or 'none'}) stay cached; the {stage} stage was not marked done and "
                    f"its partial files are wiped on the next run\n  fix: free space, or give cache_dir= (stage "
                    f"outputs) or hydra.run.dir= (run folders) a larger disk, then rerun the same command: only the "
                    f"{stage} stage and those after it are computed")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _scrub(out_dir: Path, secrets: set[str]) -> None:
    """Hydra writes the command-line overrides into ``.hydra/{config,hydra,overrides}.yaml`` before diq runs; a key
    pasted on the command line (``judge.api_key_env=sk-…``) is replaced there by ``<redacted>``."""
    if not secrets:
        return
    for f in list((out_dir / ".hydra").glob("*.yaml")) + list(out_dir.glob("*.log")):
        try:
            text = f.read_text()
            clean = text
            for sec in secrets:
                clean = clean.replace(sec, "<redacted>")
            if clean != text:
                f.write_text(clean)
        except OSError:
            pass


@hydra.main(config_path=str(CONF), config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    """One run. In a sweep (multirun) a failed cell never stops the others: its record.failed.json says why, and the
    sweep's end (diq.report.callbacks) lists the failed cells and exits non-zero."""
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

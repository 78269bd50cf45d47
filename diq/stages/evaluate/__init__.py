"""Stage 6: evaluation through lm-eval (diq/stages/evaluate/harness.py): the generations are cached by the adapter's stage key
(None = the base model) and the eval config without the matcher; the answer matcher is its own cached step over
them. Per-item outputs stay in the match folder (``per_item``).

Record section ``eval``: ``eval_plan`` (before any compute), ``eval``, ``metrics``, ``averages``,
``averages_n``, ``per_item``."""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from diq.artifacts import StageDir, read_json, sha256_file, write_json
from diq.config.checks import _int, _opt_int, check_device, check_dtype
from diq.engine.models import model_key
from diq.stages.base import Checks, RunState, Stage
from diq.stages.evaluate import harness
from diq.tasks.mcq import data_path

log = logging.getLogger(__name__)


def data_files(eval_cfg) -> dict[str, str]:
    """Every local file the eval config names (a local benchmark, a bundle file, a validation file), path → content
    hash: part of the generations' cache key, so an edited benchmark file is evaluated again, never answered from the
    cache of its earlier content."""
    out: dict[str, str] = {}

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and x and (x.startswith("pkg://") or "/" in x or x.endswith((".json", ".jsonl"))):
            try:
                if data_path(x).is_file():
                    out[x] = sha256_file(data_path(x))
            except (OSError, ValueError):  # a long prompt string with a "/" is not a path
                pass
    walk(eval_cfg)
    return out


class EvalStage(Stage):
    """Two cached steps: ``eval`` (the generations, keyed by model, adapter and the eval config *without* the
    matcher) and ``match`` (the answer matcher over those generations, keyed by the generation folder and the
    matcher), so a change of ``eval.matcher`` re-scores in seconds."""

    name = "eval"
    reads = ("plan",)
    writes = ("plan",)
    section = "eval"

    def check(self, c: Checks) -> None:
        """``eval.*`` settings (the tasks themselves are resolved and checked by the plan, in ``prepare``)."""
        ev = c.cfg.eval
        _int(ev.get("seed", 0), "eval.seed", 0, fix="a non-negative integer (the draw of eval.limit items)")
        _int(ev.get("holdout", 0) or 0, "eval.holdout", 0, fix="items held out per source for validation, e.g. 20")
        _int(ev.get("holdout_seed", 0), "eval.holdout_seed", 0, fix="a non-negative integer")
        check_dtype(ev.get("dtype", "float32"), "eval.dtype")
        check_device(ev.device, "eval.device", used=c.reaches("eval") and c.here)
        _opt_int(ev.get("max_gen_toks"), "eval.max_gen_toks", 1, fix="tokens a CoT answer may generate, e.g. 512")

    def prepare(self, state: RunState) -> None:
        """The evaluation plan, built once (``diq/tasks/plan.py``): task names, files, every item checked before
        compute; the pool and score stages read it too."""
        from diq.tasks.plan import EvalPlan

        state.plan = EvalPlan.build(state.cfg.eval, state.cfg.get("hub_fixtures"))
        specs = state.plan.specs
        state.rec.stages.eval.eval_plan = {
            s["name"]: {"category": s.get("category"),
                        "source": (s.get("bundle") or {}).get("source") or (s.get("local") or {}).get("path")
                        or s["name"]} for s in specs}

    def key(self, state: RunState) -> dict:
        """The generations' key; ``model``: a full model to evaluate instead of the run's (DPO's stack mode)."""
        eval_cfg = OmegaConf.to_container(state.cfg.eval, resolve=True)
        eval_cfg.pop("matcher", None)
        return {"evaluate_version": 3,  # 3: generations kept, matching separate
                "model": model_key(state.eval_model or state.model_path), "adapter": state.stage_key,
                "eval": eval_cfg, "data": data_files(eval_cfg)}

    def compute(self, state: RunState) -> float:
        cfg, rec, tracker = state.cfg, state.rec, state.tracker
        t = time.time()
        model_path = state.eval_model or state.model_path
        matcher = OmegaConf.to_container(cfg.eval, resolve=True).get("matcher", "diq")
        gen_stage = StageDir(cfg.cache_dir, "eval", self.key(state))

        def generate(folder):
            write_json(folder / "generations.json",
                       harness.generate(model_path, state.adapter, cfg.eval, samples_dir=folder / "samples",
                                        plan=state.plan))

        _, reused = gen_stage.get_or_compute(generate)
        if reused:
            log.info(f"eval: reusing the generations in {gen_stage.path}")
        stage = StageDir(cfg.cache_dir, "match", {"match_version": 2,  # 2: a multiple-choice target logged as text
                                                  "generations": gen_stage.key,
                                                  "matcher": matcher})

        def match(folder):
            write_json(folder / "metrics.json", harness.match(read_json(gen_stage.path / "generations.json"), matcher,
                                                              samples_dir=folder / "samples"))

        _, reused = stage.get_or_compute(match)
        if reused:
            log.info(f"eval: reusing {stage.path}")
        ev = read_json(stage.path / "metrics.json")
        sec = rec.stages.eval
        sec.eval = {**ev, "cache": str(stage.path)}
        sec.metrics = {name: t_["value"] for name, t_ in ev["tasks"].items()}
        sec.averages = ev["averages"]
        sec.averages_n = ev.get("averages_n")
        sec.per_item = str(stage.path / "samples")
        log.info("eval: " + ", ".join(f"{n} {v:.4f}" for n, v in sec.metrics.items()) + f" (per item: {sec.per_item})")
        tracker.summary({**{f"eval/{n}": v for n, v in sec.metrics.items()},
                         **{f"eval/{n}": v for n, v in ev["averages"].items() if v is not None}})
        tracker.table("eval/tasks", ["task", "category", "metric", "value", "n"],
                      [[n, t_["category"], t_["metric"], t_["value"], t_["n"]] for n, t_ in ev["tasks"].items()])
        return float(ev.get("seconds") or (time.time() - t)) + float(ev.get("seconds_match") or 0)

"""Stage 2, score: the scores the strategy needs, each computed once and cached (``ScoreStage``). Record section
``score``: ``scores`` (per scorer: cache folder, seconds, reused; the validation set's ids and hash); the
validation set's decontamination goes to the pool's section (``decontamination.validation``).

One module per concern: ``cache`` (the content-addressed score cache), ``context`` (what every scorer shares; the
validation set comes from the run's evaluation plan, ``diq/tasks/plan.py``), ``warmup`` (warm-up LoRA checkpoints),
and the scorers ``influence_score``, ``less_score``, ``similarity_score`` and ``difficulty_score`` (with
``difficulty/``: the judge, the classifier, the proxies).

A strategy names the scores it needs (``needs:`` in ``conf/selection/<name>.yaml``); score ``<name>`` is computed by
the function that ``scoring.<name>._target_`` names (``conf/scoring/default.yaml``; for difficulty, the chosen
``conf/scoring/difficulty/<source>.yaml``), called with the run's ``ScoreContext``; it returns a ``Score``
(``result``: the value, its ``scores.parquet`` column, by-products, the record entry), collected in ``Scores``.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from diq import CONF
from diq.config.checks import (
    _choice,
    _int,
    _opt_int,
    check_classifier,
    check_device,
    check_dtype,
    check_lora,
    check_warmup,
)
from diq.config.components import component
from diq.engine.lora import check_targets
from diq.engine.models import resolve_model
from diq.errors import DiqError
from diq.stages.base import Checks, RunState, Stage
from diq.stages.score.context import ScoreContext
from diq.stages.score.difficulty import check_perspective
from diq.stages.score.result import Score, Scores

__all__ = ["Score", "ScoreContext", "ScoreStage", "Scores", "compute_scores", "scorer"]  # SCORER_CALLS: diq.stages.score.cache


def scorer(cfg: DictConfig, name: str):
    """The function that computes score ``name``: ``scoring.<name>._target_``, built by Hydra's ``instantiate``."""
    block = cfg.scoring.get(name)
    target = block.get("_target_") if block is not None else None
    if block is not None and not target:  # a config saved before scorers were named by `_target_` (an older record)
        target = _conf_target(name, block)
    if not target:
        known = sorted(k for k, v in cfg.scoring.items() if isinstance(v, DictConfig) and v.get("_target_"))
        raise DiqError(f"no scorer for score {name!r}: scoring.{name}._target_ is not set\n  fix: a strategy's `needs` "
                       f"names scores among {', '.join(known)}, or give scoring.{name} a `_target_`")
    return component(target, f"scoring.{name}._target_")



def _conf_target(name: str, block) -> str | None:
    from omegaconf import OmegaConf

    conf = CONF / "scoring"
    path = conf / "difficulty" / f"{block.get('source')}.yaml" if name == "difficulty" else conf / "default.yaml"
    if not path.exists():
        return None
    node = OmegaConf.load(path)
    return node.get("_target_") if name == "difficulty" else (node.get(name) or {}).get("_target_")


def compute_scores(needs: list[str], records: list[dict], model_path: str, cfg: DictConfig, out_dir: Path,
                   decontam=None, plan=None) -> Scores:
    """Compute (or load) the named scores: name → array, with their ``columns`` and the record's ``info``."""
    ctx = ScoreContext(records, model_path, cfg, out_dir, decontam, plan)
    fns = {name: scorer(cfg, name) for name in needs}  # every scorer is found before anything is computed
    if set(needs) & {"influence", "less", "similarity"}:
        ctx.val  # noqa: B018 - build, check and decontaminate the validation set before any scoring starts
    scores = Scores()
    for name in needs:
        scores.add(name, fns[name](ctx))
    if ctx._val is not None:
        v = ctx._val[1]
        scores.info["validation"] = {"n": v["n"], "hash": v["hash"], "ids": v["tasks"], "per_task": v.get("per_task"),
                                     "kinds": v.get("kinds")}
    if ctx.val_decontam is not None:
        scores.info["validation_decontamination"] = ctx.val_decontam
    return scores


def uses_scorers(needs: set[str]) -> dict[str, bool]:
    """Which scoring blocks do work for a strategy with these needs (the influence pass also gives difficulty's loss;
    the proxies serve difficulty and IFD)."""
    return {"influence": bool(needs & {"influence", "difficulty"}), "less": "less" in needs,
            "proxies": bool(needs & {"difficulty", "ifd"}), "similarity": "similarity" in needs}


class ScoreStage(Stage):
    """Each score the strategy needs, computed once per content key (``cache``: one entry per scorer)."""

    name = "score"
    reads = ("records",)
    writes = ("scores",)
    section = "score"

    def check(self, c: Checks) -> None:
        """``scoring.*``: the influence and LESS passes, the proxies, similarity, the judge, the classifiers and the
        validation set (devices only for the scorers the strategy needs)."""
        from diq.engine.projection import KINDS
        from diq.stages.score.difficulty.judge import check_judge

        sc, needs = c.cfg.scoring, c.needs
        _int(sc.validation.per_task, "scoring.validation.per_task", 1, fix="items per target benchmark, e.g. 20")
        inf, less = sc.influence, sc.less
        _opt_int(inf.get("proj_dim"), "scoring.influence.proj_dim", 1,
                 fix="null for the exact Dot, or a projection size like 4096")
        _int(less.proj_dim, "scoring.less.proj_dim", 1, fix="a projection size like 8192")
        for key, block in (("scoring.influence", inf), ("scoring.less", less)):
            _int(block.max_length, f"{key}.max_length", 1, fix="tokens per sample, e.g. 8192")
            _opt_int(block.get("max_response_tokens"), f"{key}.max_response_tokens", 1,
                     fix="null (every response token) or the first N, e.g. 256")
            if block.get("batch_tokens") != "auto":
                _int(block.get("batch_tokens"), f"{key}.batch_tokens", 1,
                     fix="auto, or padded tokens per batch, e.g. 4096")
            kind = block.get("projection", "sjlt")
            if kind not in KINDS:
                raise DiqError(f"{key}.projection={kind!r}\n  fix: one of {', '.join(KINDS)}")
            nnz, k = block.get("proj_nnz", 1), block.get("proj_dim")
            _int(nnz, f"{key}.proj_nnz", 1, fix="nonzeros per coordinate of the sparse JL, e.g. 1 or 4")
            if kind == "sjlt" and k is not None and int(k) % int(nnz):
                raise DiqError(f"{key}.proj_nnz={nnz} does not divide proj_dim={k}\n  fix: a divisor, e.g. 1")
        _int(inf.get("shards", 1), "scoring.influence.shards", 1, fix="1, or N to split the pool pass into N shards")
        _opt_int(inf.get("shard_index"), "scoring.influence.shard_index", 0, fix="a shard number 0 … shards-1, or null")
        if inf.get("shard_index") is not None and inf.shard_index >= inf.get("shards", 1):
            raise DiqError(f"scoring.influence.shard_index={inf.shard_index} with shards={inf.shards}\n"
                           f"  fix: use 0 … {inf.shards - 1}")
        _choice(inf.normalize, "scoring.influence.normalize", ("none", "cosine"),
                "none (the paper's raw Dot) or cosine")
        if inf.warmup.enabled:
            check_warmup(inf.warmup, "scoring.influence.warmup", checkpoints=True)
        check_warmup(less.warmup, "scoring.less.warmup")
        check_lora(less.lora, "scoring.less.lora")
        for key in ("proxies", "similarity"):
            _int(sc[key].max_length, f"scoring.{key}.max_length", 1, fix="tokens per sample, e.g. 8192")
            _int(sc[key].batch_tokens, f"scoring.{key}.batch_tokens", 1, fix="padded tokens per batch, e.g. 4096")
        for key, used in uses_scorers(needs).items():
            check_dtype(sc[key].dtype, f"scoring.{key}.dtype")
            check_device(sc[key].device, f"scoring.{key}.device", auto=True, used=used and c.here)
        if "difficulty" in needs:  # the perspective D(z) is read from (difficulty_score.difficulty)
            check_perspective(c.cfg.selection.get("perspective") or sc.difficulty.perspective)
        check_judge(c.cfg, judged=c.here and "difficulty" in needs
                    and str(sc.difficulty.get("source")) in ("judge", "judge_classifier"))
        for name in ("classifier", "judge_classifier"):
            if (sc.difficulty or {}).get(name) is not None:
                check_classifier(sc.difficulty[name], f"scoring.difficulty.{name}")
        _int(sc.validation.seed, "scoring.validation.seed", 0, fix="a non-negative integer (the draw of validation items)")

    def prepare(self, state: RunState) -> None:
        cfg = state.cfg
        if cfg.scoring.influence.get("shard_index") is not None and cfg.stop_after != "score":
            raise DiqError(f"scoring.influence.shard_index={cfg.scoring.influence.shard_index} computes one shard "
                           f"only\n  fix: add stop_after=score to shard runs; a later run without shard_index merges "
                           f"them")

    def compute(self, state: RunState) -> float:
        cfg, rec, needs = state.cfg, state.rec, state.strategy.needs
        if not needs:
            state.scores = Scores()
            return 0.0
        score_model = resolve_model(cfg.scoring.model) if cfg.scoring.get("model") else rec.model_path
        check_targets(score_model, [(k, b) for k, b, need in (("train.lora", cfg.train.lora, "influence"),
                                                              ("scoring.less.lora", cfg.scoring.less.lora, "less"))
                                    if need in needs or (need == "influence" and "difficulty" in needs)])
        scores = compute_scores(needs, state.records, score_model, cfg, state.out_dir, decontam=state.decontam,
                                plan=state.plan)
        info = scores.info
        if "validation_decontamination" in info:
            pool = rec.stages.pool
            pool.decontamination = {**(pool.decontamination or {}), "validation": info.pop("validation_decontamination")}
        info["scoring_model"] = score_model
        rec.stages.score.scores = info
        state.scores = scores
        return sum(float(v.get("seconds") or 0) for v in info.values() if isinstance(v, dict))

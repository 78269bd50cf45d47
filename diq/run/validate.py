"""The resolved config, checked as a whole before any data is read or compute is spent: every value a user sets
gets a named error with the key and the fix (exit 2), instead of a traceback or a silent default later.

The cross-group rules and the run's own settings; single values are checked by ``diq/config/checks.py``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from diq import CONF
from diq.config.checks import (
    QUADRANTS,
    _choice,
    _int,
    _num,
    _opt_int,
    check_cache_from,
    check_classifier,
    check_device,
    check_dtype,
    check_lora,
    check_scheduler,
    check_secret_names,
    check_warmup,
    check_writable,
    dpo_loss_types,
)
from diq.engine.projection import KINDS
from diq.errors import DiqError
from diq.stages.score.difficulty.judge import check_judge
from diq.stages.select.strategies import build


def check_components(cfg: DictConfig) -> None:
    """The strategy builds (its keys are its constructor's arguments), every score it needs has a scorer, and the
    difficulty source is the one its `_target_` computes."""
    from diq.stages.score import scorer
    from diq.stages.select.strategies import build

    sel = cfg.selection
    conf = CONF
    known = {p.stem: OmegaConf.load(p).get("_target_") for p in sorted((conf / "selection").glob("*.yaml"))}
    if sel.get("name") in known and known[sel.name] != sel.get("_target_"):
        raise DiqError(f"selection.name={sel.name} but selection._target_={sel.get('_target_')} (conf/selection/"
                       f"{sel.name}.yaml names {known[sel.name]})\n  fix: choose the strategy with selection={sel.name}")
    if sel.get("name") not in known and sel.get("_target_") in known.values():
        raise DiqError(f"unknown selection strategy {sel.get('name')!r} (its _target_ {sel._target_} is a built-in "
                       f"strategy's)\n  fix: choose one of {', '.join(known)} (selection=<name>), or name your own "
                       f"class with selection._target_")
    strat = build(sel)
    for need in strat.needs:
        scorer(cfg, need)
    if "difficulty" in strat.needs:
        d = cfg.scoring.difficulty
        path = conf / "scoring" / "difficulty" / f"{d.get('source')}.yaml"
        expect = OmegaConf.load(path).get("_target_") if path.exists() else None
        if expect is not None and expect != d.get("_target_"):
            raise DiqError(f"scoring.difficulty.source={d.source} but scoring.difficulty._target_={d.get('_target_')}"
                           f"\n  fix: choose a difficulty source with its config group: scoring/difficulty={d.source}")


def check_stages(cfg: DictConfig, here: bool = True) -> None:
    """Scoring, training, DPO and evaluation settings: ranges, dtypes, devices (present on this machine when the
    stage will run), LoRA and warm-up blocks. Each is checked whether or not its stage runs (a sweep would reach it)
    except device presence, which only matters where the work happens (``here=False``: a sweep's submitting host,
    which is not where its cells run)."""
    from diq.run.pipeline import STAGES
    from diq.stages.select.strategies import build

    stop = STAGES.index(_choice(cfg.stop_after, "stop_after", STAGES))
    strat = build(cfg.selection)
    needs = set(strat.needs)
    trains = strat.trains and stop >= STAGES.index("train")
    sc = cfg.scoring
    inf, less = sc.influence, sc.less
    _opt_int(inf.get("proj_dim"), "scoring.influence.proj_dim", 1,
             fix="null for the exact Dot, or a projection size like 4096")
    _int(less.proj_dim, "scoring.less.proj_dim", 1, fix="a projection size like 8192")
    for key, block in (("scoring.influence", inf), ("scoring.less", less)):
        _int(block.max_length, f"{key}.max_length", 1, fix="tokens per sample, e.g. 8192")
        _opt_int(block.get("max_response_tokens"), f"{key}.max_response_tokens", 1,
                 fix="null (every response token) or the first N, e.g. 256")
        if block.get("batch_tokens") != "auto":
            _int(block.get("batch_tokens"), f"{key}.batch_tokens", 1, fix="auto, or padded tokens per batch, e.g. 4096")
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
    uses = {"influence": bool(needs & {"influence", "difficulty"}), "less": "less" in needs,
            "proxies": bool(needs & {"difficulty", "ifd"}), "similarity": "similarity" in needs}
    for key, used in uses.items():
        check_dtype(sc[key].dtype, f"scoring.{key}.dtype")
        check_device(sc[key].device, f"scoring.{key}.device", auto=True, used=used and here)

    tr = cfg.train
    check_lora(tr.lora, "train.lora")
    _int(tr.epochs, "train.epochs", 1, fix="train.epochs ≥ 1; to evaluate the untuned model use selection=none")
    _num(tr.lr, "train.lr", 1e-12, 1.0, "a learning rate such as 1e-4")
    _int(tr.max_length, "train.max_length", 1, fix="tokens per sample (prompt + response), e.g. 8192")
    _int(tr.effective_batch, "train.effective_batch", 1, fix="samples per optimizer step, e.g. 16")
    _int(tr.micro_batch, "train.micro_batch", 1, fix="samples per forward pass, e.g. 2")
    _int(tr.num_processes, "train.num_processes", 1, fix="1, or N processes (torchrun) on one node")
    _num(tr.warmup_ratio, "train.warmup_ratio", 0.0, 1.0, "the share of steps spent warming up the lr, e.g. 0.03")
    _num(tr.weight_decay, "train.weight_decay", 0.0, 10.0, "e.g. 0.0")
    _num(tr.max_grad_norm, "train.max_grad_norm", 1e-12, 1e12, "the gradient clipping norm, e.g. 1.0")
    check_scheduler(tr.scheduler, "train.scheduler", "cosine (the paper's) or linear")
    check_dtype(tr.dtype, "train.dtype")
    warms = "less" in needs or (uses["influence"] and bool(inf.warmup.enabled))  # warm-ups train on train.device
    check_device(tr.device, "train.device", used=(trains or warms) and here)

    check_judge(cfg, judged=here and "difficulty" in needs
                and str(sc.difficulty.get("source")) in ("judge", "judge_classifier"))
    for name in ("classifier", "judge_classifier"):
        if (sc.difficulty or {}).get(name) is not None:
            check_classifier(sc.difficulty[name], f"scoring.difficulty.{name}")
    _int(sc.validation.seed, "scoring.validation.seed", 0, fix="a non-negative integer (the draw of validation items)")

    ev = cfg.eval
    _int(ev.get("seed", 0), "eval.seed", 0, fix="a non-negative integer (the draw of eval.limit items)")
    _int(ev.get("holdout", 0) or 0, "eval.holdout", 0, fix="items held out per source for validation, e.g. 20")
    _int(ev.get("holdout_seed", 0), "eval.holdout_seed", 0, fix="a non-negative integer")
    check_dtype(ev.get("dtype", "float32"), "eval.dtype")
    check_device(ev.device, "eval.device", used=stop == STAGES.index("eval") and here)
    _opt_int(ev.get("max_gen_toks"), "eval.max_gen_toks", 1, fix="tokens a CoT answer may generate, e.g. 512")


def validate(cfg: DictConfig, here: bool = True) -> None:
    """Everything checkable from the config alone. ``here=False`` skips only whether a device exists on this
    machine (the Slurm launcher checks every cell this way before it submits anything), and whether the cache can
    be written from here."""
    check_secret_names(cfg)
    if here:
        check_writable(cfg.cache_dir, "cache_dir")
        check_cache_from(cfg.get("cache_from"))
    _int(cfg.seed, "seed", 0, fix="seed=0 (a non-negative integer)")
    if cfg.decontaminate not in ("warn", "drop", "fail", "off"):
        raise DiqError(f"decontaminate={cfg.decontaminate!r}; choose drop, warn, fail or off")
    _int(cfg.decontam_ngram, "decontam_ngram", 4, fix="13 is the GPT-3 / lm-eval convention; short n-grams flag "
                                                     "ordinary phrases")
    sel = cfg.selection
    if "tau_d" in sel:
        _num(sel.tau_d, "selection.tau_d", 0, 100, "a percentile of D in [0, 100] (50 = the median)")
    if sel.get("quadrants") is not None:
        bad = [q for q in sel.quadrants if q not in QUADRANTS]
        if bad or not len(sel.quadrants):
            raise DiqError(f"selection.quadrants={list(sel.quadrants)}: unknown {bad or 'empty list'}\n"
                           f"  fix: a non-empty ordered list of {', '.join(QUADRANTS)}")
        if len(set(sel.quadrants)) != len(sel.quadrants):
            raise DiqError(f"selection.quadrants={list(sel.quadrants)} repeats a quadrant\n"
                           f"  fix: each of {', '.join(QUADRANTS)} at most once, in the order to fill the budget")
    if sel.get("quadrant") is not None and sel.name == "quadrant" and sel.quadrant not in QUADRANTS:
        raise DiqError(f"selection.quadrant={sel.quadrant!r}; choose one of {', '.join(QUADRANTS)}")
    check_components(cfg)
    strat = build(sel)
    if strat.uses_origins and not cfg.pool.get("planted"):
        raise DiqError(f"selection=oracle reads a planted pool's hidden origins; pool={cfg.pool.name} has none\n"
                       f"  fix: use pool=knowledge (experiment=sensitivity) or pool=planted")
    if strat.uses_budget:
        f = cfg.budget.fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)):
            raise DiqError(f"budget.fraction={f!r} is not a number\n  fix: use a fraction in (0, 1], e.g. budget=p1 "
                           f"(0.01) or budget.fraction=0.05")
    _int(cfg.scoring.validation.per_task, "scoring.validation.per_task", 1, fix="items per target benchmark, e.g. 20")
    check_stages(cfg, here)
    d = cfg.get("dpo") or {}
    if d.get("enabled"):
        if d.adapter not in ("continue", "stack"):
            raise DiqError(f"dpo.adapter={d.adapter!r}\n  fix: continue (keep training the SFT LoRA) or stack (new LoRA)")
        _num(d.beta, "dpo.beta", 1e-6, 100.0, "the DPO temperature, e.g. 0.1")
        _num(d.lr, "dpo.lr", 1e-12, 1.0, "a learning rate such as 5e-6")
        _num(d.epochs, "dpo.epochs", 1e-6, 1000.0, "epochs over the preference pairs, e.g. 1")
        for key in ("per_device_batch", "grad_accum"):
            _int(d[key], f"dpo.{key}", 1, fix="a positive integer")
        _int(d.max_length, "dpo.max_length", 16, fix="tokens per prompt + response, e.g. 1024")
        _num(d.get("warmup_ratio", 0.0), "dpo.warmup_ratio", 0.0, 1.0, "the share of steps warming up the lr, e.g. 0")
        if d.adapter == "stack":
            check_lora(d.lora, "dpo.lora")
        check_dtype(d.dtype, "dpo.dtype")
        check_scheduler(d.get("scheduler", "linear"), "dpo.scheduler", "linear (TRL's DPO example)")
        known = dpo_loss_types()
        if known:
            _choice(d.get("loss_type", "sigmoid"), "dpo.loss_type", known, "sigmoid (DPO)")
        _int(cfg.preference.get("seed", 0), "preference.seed", 0, fix="a non-negative integer (the held-out draw)")
        check_device(d.device, "dpo.device", used=cfg.stop_after in ("dpo", "eval") and here)
        p = cfg.preference
        _int(p.get("holdout") or 0, "preference.holdout", 0, fix="held-out pairs for the margin, e.g. 50")
        if p.get("limit") is not None:
            _int(p.limit, "preference.limit", 1, fix="at most N training pairs, or null for all")
    lim = cfg.pool.get("limit")
    if lim is not None:
        _int(lim, "pool.limit", 1, fix="the first N records, or null for all")

"""The resolved config, checked as a whole before any data is read or compute is spent: every value a user sets
gets a named error with the key and the fix (exit 2), instead of a traceback or a silent default later."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import DiqError
from .projection import KINDS

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
KEYLIKE = re.compile(r"^(sk-|sk_|hf_|xox[abp]-|ghp_|AKIA)[A-Za-z0-9_\-]{8,}$|^[A-Za-z0-9_\-]{32,}$")


def _int(value, key: str, lo: int | None = None, hi: int | None = None, fix: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DiqError(f"{key}={value!r} is not an integer\n  fix: {fix or 'use an integer'}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"≥ {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise DiqError(f"{key}={value} is out of range: use a value {rng}" + (f"\n  fix: {fix}" if fix else ""))
    return value


def _num(value, key: str, lo: float, hi: float, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DiqError(f"{key}={value!r} is not a number\n  fix: {fix}")
    if not lo <= float(value) <= hi:
        raise DiqError(f"{key}={value} is outside [{lo:g}, {hi:g}]\n  fix: {fix}")
    return float(value)


def check_secret_names(cfg: DictConfig) -> None:
    """A key pasted where the *name* of an environment variable belongs is refused (and never written anywhere)."""
    for where, node in (("judge", cfg.get("judge")),):
        name = (node or {}).get("api_key_env")
        if isinstance(name, str) and (KEYLIKE.match(name) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)):
            raise DiqError(f"{where}.api_key_env holds something that is not an environment variable name (it looks "
                           f"like a key; it was not used or written)\n  fix: export the key, e.g. "
                           f"OPENAI_API_KEY=..., and set {where}.api_key_env=OPENAI_API_KEY")


def check_components(cfg: DictConfig) -> None:
    """The strategy builds (its keys are its constructor's arguments), every score it needs has a scorer, and the
    difficulty source is the one its `_target_` computes."""
    from .scoring import scorer
    from .selection import build

    sel = cfg.selection
    conf = Path(__file__).resolve().parent.parent / "conf"
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


def validate(cfg: DictConfig) -> None:
    check_secret_names(cfg)
    _int(cfg.seed, "seed", 0, fix="seed=0 (a non-negative integer)")
    if cfg.decontaminate not in ("warn", "drop", "fail", "off"):
        raise DiqError(f"decontaminate={cfg.decontaminate!r}; choose drop, warn, fail or off")
    _int(cfg.decontam_ngram, "decontam_ngram", 4, fix="13 is the GPT-3 / lm-eval convention; short n-grams flag "
                                                     "ordinary phrases")
    sel = cfg.selection
    if sel.name not in ("none", "full"):
        f = cfg.budget.fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)):
            raise DiqError(f"budget.fraction={f!r} is not a number\n  fix: use a fraction in (0, 1], e.g. budget=p1 "
                           f"(0.01) or budget.fraction=0.05")
    if "tau_d" in sel:
        _num(sel.tau_d, "selection.tau_d", 0, 100, "a percentile of D in [0, 100] (50 = the median)")
    if sel.get("quadrants") is not None:
        bad = [q for q in sel.quadrants if q not in QUADRANTS]
        if bad or not len(sel.quadrants):
            raise DiqError(f"selection.quadrants={list(sel.quadrants)}: unknown {bad or 'empty list'}\n"
                           f"  fix: a non-empty ordered list of {', '.join(QUADRANTS)}")
    if sel.get("quadrant") is not None and sel.name == "quadrant" and sel.quadrant not in QUADRANTS:
        raise DiqError(f"selection.quadrant={sel.quadrant!r}; choose one of {', '.join(QUADRANTS)}")
    check_components(cfg)
    v = cfg.scoring.validation
    _int(v.per_task, "scoring.validation.per_task", 1, fix="items per target benchmark, e.g. 20")
    for key in ("influence", "less"):
        bt = cfg.scoring[key].get("batch_tokens")
        if bt != "auto":
            _int(bt, f"scoring.{key}.batch_tokens", 1, fix="auto, or padded tokens per batch, e.g. 4096")
    pd = cfg.scoring.influence.get("proj_dim")
    if pd is not None:
        _int(pd, "scoring.influence.proj_dim", 1, fix="null for the exact Dot, or a projection size like 4096")
    _int(cfg.scoring.less.proj_dim, "scoring.less.proj_dim", 1, fix="a projection size like 8192")
    for key in ("influence", "less"):
        b = cfg.scoring[key]
        kind = b.get("projection", "sjlt")
        if kind not in KINDS:
            raise DiqError(f"scoring.{key}.projection={kind!r}\n  fix: one of {', '.join(KINDS)}")
        nnz, k = b.get("proj_nnz", 1), b.get("proj_dim")
        _int(nnz, f"scoring.{key}.proj_nnz", 1, fix="nonzeros per coordinate of the sparse JL, e.g. 1 or 4")
        if kind == "sjlt" and k is not None and int(k) % int(nnz):
            raise DiqError(f"scoring.{key}.proj_nnz={nnz} does not divide proj_dim={k}\n  fix: a divisor, e.g. 1")
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
        p = cfg.preference
        _int(p.get("holdout") or 0, "preference.holdout", 0, fix="held-out pairs for the margin, e.g. 50")
        if p.get("limit") is not None:
            _int(p.limit, "preference.limit", 1, fix="at most N training pairs, or null for all")
    tr = cfg.train
    _int(tr.epochs, "train.epochs", 1, fix="train.epochs ≥ 1; to evaluate the untuned model use selection=none")
    _num(tr.lr, "train.lr", 1e-12, 1.0, "a learning rate such as 1e-4")
    lim = cfg.pool.get("limit")
    if lim is not None:
        _int(lim, "pool.limit", 1, fix="the first N records, or null for all")

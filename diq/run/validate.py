"""The resolved config, checked as a whole before any data is read or compute is spent: every value a user sets
gets a named error with the key and the fix (exit 2), instead of a traceback or a silent default later.

Here: the run's own settings and the rules across groups (a strategy and the scorers it needs, the oracle and a
planted pool). Each stage checks its own block (``Stage.check``, with the strategy and ``stop_after`` it may depend
on), a strategy its own keys when it is built, and the typed schemas (``diq/config/schema.py``) keys and types when the
config is composed; single-value helpers are in ``diq/config/checks.py``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from diq import CONF
from diq.config.checks import _choice, _int, check_cache_from, check_secret_names, check_writable
from diq.errors import DiqError
from diq.stages.base import Checks
from diq.stages.select.strategies import Strategy, build


def check_components(cfg: DictConfig) -> Strategy:
    """The strategy builds (its keys are its constructor's arguments, which it checks), every score it needs has a
    scorer, and the difficulty source is the one its `_target_` computes. Returns the strategy."""
    from diq.stages.score import scorer

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
    return strat


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
    strat = check_components(cfg)
    if strat.uses_origins and not cfg.pool.get("planted"):
        raise DiqError(f"selection=oracle reads a planted pool's hidden origins; pool={cfg.pool.name} has none\n"
                       f"  fix: use pool=knowledge (experiment=sensitivity) or pool=planted")
    from diq.run.pipeline import PLAN, STAGES

    checks = Checks(cfg, strat, _choice(cfg.stop_after, "stop_after", STAGES), STAGES, here)
    for stage in PLAN:  # each stage checks its own block (diq/stages/<stage>/__init__.py: check)
        stage.check(checks)

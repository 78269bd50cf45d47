"""The expert-practice judge: its config (``conf/judge/<local|openai>.yaml`` with the command's flags on top), the
ratings (cached per judge and item, resumable), and the per-dimension summary with bootstrap CIs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from diq.artifacts import sha256_obj
from diq.config.compose import JUDGE_OVERRIDES, compose_conf, group_config, group_names
from diq.errors import DiqError
from diq.practice.agreement import bootstrap_diff
from diq.practice.criteria import DIMENSIONS, practice_prompt


def compose_judge(overrides: list[str]) -> dict:
    """The ``judge`` block composed from conf/ exactly as ``diq.run`` composes it, with Hydra overrides
    (``judge=openai``, ``judge.base_url=…``, ``+model@judge.model=<name>``)."""
    cfg = compose_conf(overrides, JUDGE_OVERRIDES, "judge", "judge=local|openai, judge.<key>=<value>, "
                                                  "+model@judge.model=<conf/model name>; see conf/judge/*.yaml")
    return OmegaConf.to_container(cfg.judge, resolve=True)


def _judge_cfg(args) -> dict:
    """The judge of conf/judge/ (the one the difficulty stage uses): ``--judge`` and the Hydra-style overrides after
    the run folder(s) compose it; the other flags are shorthands set on top when given."""
    jcfg = compose_judge(([f"judge={args.judge}"] if args.judge else []) + list(getattr(args, "overrides", [])))
    if jcfg["backend"] == "local":
        model = args.judge_model or (None if jcfg.get("model") else "smollm2_135m")
        if model:
            mcfg = group_config("model", model) if model in group_names("model") \
                else OmegaConf.create({"name": Path(model).name, "source": "local", "path": model})
            jcfg["model"] = OmegaConf.to_container(mcfg)
        jcfg["device"] = args.device
        flags = {"max_length": args.judge_max_length}
    else:
        flags = {"base_url": args.base_url, "model_name": args.model_name, "api_key_env": args.api_key_env,
                 "max_retries": args.max_retries, "backoff": args.backoff}
    jcfg.update({k: v for k, v in flags.items() if v is not None})
    from diq.stages.score.difficulty.judge import check_judge

    check_judge(OmegaConf.create({"judge": jcfg}), judged=True)
    if jcfg["backend"] == "openai" and not (jcfg.get("base_url") and jcfg.get("model_name")):
        raise DiqError("the openai judge needs a base URL and a model name\n  fix: --base-url URL --model-name NAME, "
                       "or judge.base_url=URL judge.model_name=NAME")
    return jcfg


def rate_items(items: list[dict], jcfg: dict, cache_dir: Path) -> dict[str, dict[str, float]]:
    """item_id → {dimension: rating}, via the difficulty judge's backends and its resumable JSONL cache."""
    from diq.stages.score.difficulty.judge import make_judge, rate_cached

    ident = {k: v for k, v in jcfg.items() if k not in ("device", "batch_size", "max_retries", "backoff", "max_wait", "timeout")}
    partial = cache_dir / "practice_judge" / f"{sha256_obj(ident)[:16]}.jsonl"
    unique = list({it["item_id"]: it for it in items}.values())
    judge = make_judge(OmegaConf.create(jcfg))
    done = rate_cached(judge, [(it, d) for d in DIMENSIONS for it in unique], practice_prompt, partial,
                       key="item_id", desc="practice judge")
    return {it["item_id"]: {d: done[(it["item_id"], d)] for d in DIMENSIONS} for it in unique}


def summarise(items: list[dict], ratings: dict, baseline: str, paired: bool, seed: int = 0) -> dict:
    groups = list(dict.fromkeys(it["group"] for it in items))
    means, diffs = {}, {}
    for d in DIMENSIONS:
        vals = {g: {it["source_id"]: ratings[it["item_id"]][d] for it in items if it["group"] == g} for g in groups}
        means[d] = {g: float(np.mean(list(v.values()))) for g, v in vals.items()}
        for g in groups:
            if g == baseline:
                continue
            if paired:
                common = sorted(set(vals[g]) & set(vals[baseline]))
                a, b = [vals[g][k] for k in common], [vals[baseline][k] for k in common]
            else:
                a, b = list(vals[g].values()), list(vals[baseline].values())
            diffs.setdefault(d, {})[f"{g} - {baseline}"] = bootstrap_diff(a, b, seed=seed, paired=paired)
    return {"groups": groups, "baseline": baseline, "means": means, "differences": diffs,
            "n_items": {g: sum(1 for it in items if it["group"] == g) for g in groups}}


def _print_summary(title: str, s: dict) -> None:
    print(f"\n{title}")
    print(f"  {'dimension':<24}" + "".join(f"{g[:22]:>24}" for g in s["groups"]))
    for d in DIMENSIONS:
        print(f"  {d:<24}" + "".join(f"{s['means'][d][g]:>24.2f}" for g in s["groups"]))
    for d, comps in s["differences"].items():
        for name, b in comps.items():
            print(f"  {d:<24} {name}: {b['diff']:+.2f} [95% CI {b['ci_low']:+.2f}, {b['ci_high']:+.2f}]")


def _judge_for_record(jcfg: dict) -> dict:
    """The judge settings a result is recorded with (runtime-only keys dropped; a key is never in jcfg, only the
    name of its environment variable)."""
    return {k: v for k, v in jcfg.items() if k not in ("device", "batch_size")}

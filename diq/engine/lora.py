"""The LoRA adapter shared by fine-tuning and influence scoring (same r / targets / init seed)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from diq.errors import DiqError


def lora_key(cfg: DictConfig) -> dict:
    """What defines the adapter's parameter space and initial values (part of every score cache key)."""
    return {"r": int(cfg.r), "alpha": float(cfg.alpha), "targets": sorted(cfg.target_modules), "seed": int(cfg.seed)}


def _targets(cfg) -> list[str]:
    tm = cfg.target_modules
    return list(OmegaConf.to_container(tm, resolve=True) if not isinstance(tm, list) else tm)


def missing_targets(module_names: list[str], targets: list[str]) -> list[str]:
    """The targets that match no module name, by peft's own rule (a name equal to the target or ending in
    ``.<target>``; regexes as peft reads them)."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    return [t for t in targets
            if not any(check_target_module_exists(LoraConfig(target_modules=[t]), n) for n in module_names)]


def _targets_error(key: str, missing: list[str], module_names: list[str], where: str) -> DiqError:
    import re

    leaves = sorted({n.rsplit(".", 1)[-1] for n in module_names if re.search(r"(proj|fc\d?|dense|linear)$", n)})
    return DiqError(f"{key}.target_modules: {missing} match no module of {where}\n  fix: choose among its linear "
                    f"layers: {', '.join(leaves) or 'see model.named_modules()'}")


def check_targets(model_path: str, blocks: list[tuple[str, DictConfig]]) -> None:
    """Every LoRA block's target_modules exist in the model: checked on an empty (meta-device) copy of the
    architecture built from its config.json, before any weights are read or compute is spent. A model without a local
    config.json (a Hub id) is checked when the adapter is attached instead (``attach_lora``)."""
    from pathlib import Path

    if not blocks or not (Path(model_path) / "config.json").exists():
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    names = [n for n, _ in model.named_modules()]
    for key, block in blocks:
        missing = missing_targets(names, _targets(block))
        if missing:
            raise _targets_error(key, missing, names, model_path)


def attach_lora(model, cfg: DictConfig, dropout: float | None = None, key: str = "lora"):
    """Wrap ``model`` with a freshly initialised, seeded LoRA adapter (B = 0, A ~ kaiming, per peft). ``key``: the
    config key the block came from, named if its targets match nothing."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(int(cfg.seed))
    lcfg = LoraConfig(r=int(cfg.r), lora_alpha=float(cfg.alpha),
                      lora_dropout=float(cfg.dropout if dropout is None else dropout),
                      target_modules=_targets(cfg), bias="none", task_type="CAUSAL_LM")
    names = [n for n, _ in model.named_modules()]
    missing = missing_targets(names, _targets(cfg))
    if missing:
        raise _targets_error(key, missing, names, getattr(model.config, "_name_or_path", "the model"))
    return get_peft_model(model, lcfg)

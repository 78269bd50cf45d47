"""The LoRA adapter shared by fine-tuning and influence scoring (same r / targets / init seed)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf


def lora_key(cfg: DictConfig) -> dict:
    """What defines the adapter's parameter space and initial values (part of every score cache key)."""
    return {"r": int(cfg.r), "alpha": float(cfg.alpha), "targets": sorted(cfg.target_modules), "seed": int(cfg.seed)}


def attach_lora(model, cfg: DictConfig, dropout: float | None = None):
    """Wrap ``model`` with a freshly initialised, seeded LoRA adapter (B = 0, A ~ kaiming, per peft)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(int(cfg.seed))
    lcfg = LoraConfig(r=int(cfg.r), lora_alpha=float(cfg.alpha),
                      lora_dropout=float(cfg.dropout if dropout is None else dropout),
                      target_modules=list(OmegaConf.to_container(cfg.target_modules, resolve=True)
                                          if not isinstance(cfg.target_modules, list) else cfg.target_modules),
                      bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg)

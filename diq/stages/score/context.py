"""What every scorer shares: the pool, the scoring model, the validation set and the cache (``ScoreContext``), and
the helpers that load a model for scoring and encode samples."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from diq.engine.formatting import encode
from diq.stages.pool.load import pool_hash
from diq.stages.score.cache import cached

CODE_KEYS = ("_target_", "_partial_")


def plain(x):
    """A config block as plain, resolved Python, for cache keys. ``_target_`` (where a component's code lives) is
    left out: moving code does not change what it computes, so it never invalidates a cache entry."""
    x = OmegaConf.to_container(x, resolve=True) if isinstance(x, DictConfig) else x
    return strip_code_keys(x)


def strip_code_keys(x):
    if isinstance(x, dict):
        return {k: strip_code_keys(v) for k, v in x.items() if k not in CODE_KEYS}
    if isinstance(x, list):
        return [strip_code_keys(v) for v in x]
    return x


def device(d: str) -> str:
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return d


class ScoreContext:
    """The pool, the model path, the run's config, the validation set (built and decontaminated once, on first use)
    and the cache root."""

    def __init__(self, records, model_path, cfg: DictConfig, out_dir: Path, decontam=None, plan=None):
        self.records, self.model_path, self.cfg, self.out_dir = records, model_path, cfg, out_dir
        self.plan = plan  # the run's EvalPlan (diq/tasks/plan.py), or None: built from cfg.eval when needed
        self.decontam = decontam  # (mode, benchmark docs, n) or None
        self.val_decontam: dict | None = None
        self.ids = [r["id"] for r in records]
        self.pool_hash = pool_hash(records)
        self.cache = Path(cfg.cache_dir)
        self._val = None
        self._tok = None

    @property
    def tok(self):
        if self._tok is None:
            from diq.engine.models import load_tokenizer

            self._tok = load_tokenizer(self.model_path)
        return self._tok

    @property
    def val(self) -> tuple[list[dict], dict]:
        if self._val is None:
            from diq.tasks.validation import decontaminated

            recs, info, self.val_decontam = decontaminated(self.cfg, self.decontam, self.plan)
            self._val = (recs, info)
        return self._val

    def base_key(self) -> dict:
        from diq.engine.models import model_key

        return {"pool_hash": self.pool_hash, "model": model_key(self.model_path), "model_cfg": plain(self.cfg.model)}

    def cached(self, name: str, key: dict, compute) -> dict:
        return cached(self.cache, name, {**self.base_key(), **key}, self.ids, compute)

    def encode_all(self, records, icfg) -> list:
        return [encode(self.tok, r, int(icfg.max_length), max_response_tokens=icfg.get("max_response_tokens"))
                for r in records]


def scoring_model(ctx: ScoreContext, lora_cfg, adapter_dir: str | None, icfg, lora_name: str = "train.lora"):
    """The model a gradient scorer differentiates: the base with a fresh LoRA, or with a warm-up checkpoint's
    adapter. Eval mode (no dropout); the LoRA weights still require grad."""
    from diq.engine.lora import attach_lora
    from diq.engine.models import load_model

    model = load_model(ctx.model_path, dtype=icfg.dtype, device=device(icfg.device))
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    else:
        model = attach_lora(model, lora_cfg, dropout=0.0, key=lora_name)
    model.eval()
    return model

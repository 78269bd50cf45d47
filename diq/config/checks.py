"""Checks of single config values and blocks, shared by the run's validation (``diq/run/validate.py``) and the tools:
each names the key and the fix (``DiqError``, exit 2). Component-specific checks live with their component."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from diq.errors import DiqError

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


DTYPES = ("float32", "bfloat16", "float16")


DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def _opt_int(value, key: str, lo: int, fix: str) -> int | None:
    return None if value is None else _int(value, key, lo, fix=fix)


def _choice(value, key: str, choices, fix: str = "") -> str:
    if value not in choices:
        raise DiqError(f"{key}={value!r}; choose one of {', '.join(map(str, choices))}" + (f"\n  fix: {fix}" if fix else ""))
    return value


def check_scheduler(value, key: str, fix: str) -> None:
    """A transformers learning-rate schedule name (reduce_lr_on_plateau needs a metric no trainer here reports)."""
    from transformers import SchedulerType

    _choice(value, key, [s.value for s in SchedulerType if s.value != "reduce_lr_on_plateau"], fix)


def check_dtype(value, key: str) -> None:
    _choice(value, key, DTYPES, "float32 (CPU, exact), bfloat16 (GPU)")


def check_device(value, key: str, auto: bool = False, used: bool = True) -> None:
    """A device string torch accepts; when the stage will run, one this machine has."""
    if not (isinstance(value, str) and (DEVICE.match(value) or (auto and value == "auto"))):
        raise DiqError(f"{key}={value!r} is not a device\n  fix: " + ("auto, " if auto else "") + "cpu, cuda, cuda:N or mps")
    if not used or value in ("auto", "cpu"):
        return
    import torch

    if value.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        idx = int(value.partition(":")[2] or 0)
        if idx >= n:
            have = f"{n} CUDA device(s)" if n else "no CUDA device (or a torch built without CUDA)"
            raise DiqError(f"{key}={value} but this machine has {have}\n  fix: {key}=cpu"
                           + (" (or train=cpu_demo for the CPU-sized fine-tuning)" if key.startswith("train.") else "")
                           + ", or run on a GPU node (a Slurm sweep: hydra/launcher=diq_slurm)")
    elif value == "mps" and not torch.backends.mps.is_available():
        raise DiqError(f"{key}=mps but MPS is not available here\n  fix: {key}=cpu")


def check_lora(block, key: str) -> None:
    """A LoRA block (train.lora, scoring.less.lora): every value peft would reject, named before compute."""
    _int(block.r, f"{key}.r", 1, fix="the adapter rank, e.g. 8")
    _num(block.alpha, f"{key}.alpha", 1e-6, 1e6, "the LoRA scale numerator (scaling = alpha / r), e.g. 16")
    d = block.get("dropout", 0.0)
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
        raise DiqError(f"{key}.dropout={d!r} is outside [0, 1)\n  fix: e.g. 0.05 (0 = none)")
    tm = block.target_modules
    if isinstance(tm, str) or not len(tm) or not all(isinstance(t, str) and t for t in tm):
        raise DiqError(f"{key}.target_modules={tm!r}: a non-empty list of module names\n"
                       f"  fix: e.g. [q_proj, k_proj, v_proj] (Llama / Qwen attention projections)")
    if len(set(tm)) != len(tm):
        raise DiqError(f"{key}.target_modules={list(tm)} repeats a module\n  fix: name each module once")


def check_warmup(block, key: str, checkpoints: bool = False) -> None:
    _num(block.fraction, f"{key}.fraction", 1e-9, 1.0, "the share of the pool the warm-up trains on, in (0, 1], "
                                                       "e.g. 0.05")
    _int(block.epochs, f"{key}.epochs", 1, fix="warm-up epochs (one checkpoint per epoch), e.g. 1")
    _num(block.lr, f"{key}.lr", 1e-12, 1.0, "a learning rate such as 2e-5")
    _int(block.max_length, f"{key}.max_length", 1, fix="tokens per sample, e.g. 8192")
    if checkpoints:
        _choice(block.checkpoints, f"{key}.checkpoints", ("last", "all"),
                "last (θ̂ = the warm-up's final adapter) or all (every epoch's, weighted by its lr)")


def check_secret_names(cfg: DictConfig) -> None:
    """A key pasted where the *name* of an environment variable belongs is refused (and never written anywhere)."""
    for where, node in (("judge", cfg.get("judge")),):
        name = (node or {}).get("api_key_env")
        if isinstance(name, str) and (KEYLIKE.match(name) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)):
            raise DiqError(f"{where}.api_key_env holds something that is not an environment variable name (it looks "
                           f"like a key; it was not used, and <redacted> replaces it in the run folder's .hydra/*.yaml)"
                           f"\n  fix: export the key, e.g. OPENAI_API_KEY=..., and set {where}.api_key_env=OPENAI_API_KEY")


def check_classifier(block, key: str) -> None:
    """A difficulty-classifier recipe (scoring.difficulty.classifier / .judge_classifier)."""
    ints = {"epochs": (1, "e.g. 3"), "batch_size": (1, "e.g. 8"), "max_length": (8, "tokens per sample, e.g. 512"),
            "seed": (0, "a non-negative integer"), "label_n": (2, "pool samples the judge labels, e.g. 2000")}
    for name, (lo, fix) in ints.items():
        if block.get(name) is not None:
            _int(block[name], f"{key}.{name}", lo, fix=fix)
    if block.get("lr") is not None:
        _num(block.lr, f"{key}.lr", 1e-12, 1.0, "a learning rate such as 5e-5")


def dpo_loss_types() -> list[str]:
    """The loss types the installed TRL's DPOConfig documents (read from its field help, so a TRL upgrade that adds
    one is accepted); empty if the help cannot be read."""
    import dataclasses

    from trl import DPOConfig

    f = {x.name: x for x in dataclasses.fields(DPOConfig)}.get("loss_type")
    return re.findall(r"`'(\w+)'`", (f.metadata or {}).get("help", "")) if f else []


def check_writable(path, key: str) -> None:
    """``path`` (a folder the run will write) exists or can be made, and a file can be written in it."""
    import os
    import tempfile

    p = Path(os.path.expanduser(str(path)))
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".diq-write-check-"):
            pass
    except OSError as e:
        raise DiqError(f"{key}={path}: cannot write there ({e.strerror or type(e).__name__})\n  fix: point {key} at a "
                       f"writable folder; to reuse a shared read-only cache, name it in cache_from: cache_dir=<your own folder> "
                       f"'cache_from=[{path}]'") from None


def check_cache_from(roots) -> None:
    """``cache_from``: a list of existing folders (read-only caches to reuse from)."""
    import os

    from omegaconf import ListConfig

    if roots is None:
        return
    if not isinstance(roots, (list, ListConfig)):
        raise DiqError(f"cache_from={roots!r}: use a list of cache folders\n  fix: 'cache_from=[/shared/lab/diq_cache]'")
    for i, r in enumerate(roots):
        if not Path(os.path.expanduser(str(r))).is_dir():
            raise DiqError(f"cache_from[{i}]={r}: no such folder\n  fix: name an existing diq cache (a folder holding "
                           f"scores/, train/, eval/ …), or drop it from cache_from")

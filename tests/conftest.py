"""Shared fixtures: a per-session cache with the tiny model, and Hydra composition of the real configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# tables that sweeps write when they end (diq.report.callbacks) go to a scratch folder, never into the repo's results/
os.environ.setdefault("DIQ_RESULTS_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"diq-results-{os.getpid()}"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("diq_cache")
    os.environ["DIQ_CACHE_DIR"] = str(d)
    return d


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """Models are expensive to build; keep them in the repo's git-ignored cache across test sessions."""
    return ROOT / ".diq_cache"


@pytest.fixture(scope="session")
def tiny_path(shared_models) -> str:
    from diq.engine.tiny import build_tiny

    return str(build_tiny(shared_models / "models" / "tiny-h64-l2-s0"))


def compose(overrides: list[str], config_name: str = "config"):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    import diq.config.schema  # noqa: F401 - the typed schemas the conf/ defaults name

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hcompose(config_name=config_name, overrides=overrides)


@pytest.fixture
def run_cfg(tmp_path, cache_dir, tiny_path):
    """Compose a tiny-model run config whose outputs land in tmp_path."""
    from omegaconf import open_dict

    def make(*overrides: str, out: str | None = None):
        cfg = compose(["model=tiny", "logger=disabled", "eval.limit=4", "eval.max_gen_toks=8",
                       f"cache_dir={cache_dir}", *overrides])
        with open_dict(cfg):
            cfg.output_dir = str(tmp_path / (out or "run"))
        return cfg
    return make

"""Every config option and every experiment composes."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose

GROUPS = ["pool", "model", "selection", "budget", "train", "eval", "logger", "scoring"]


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes(group, option):
    cfg = compose([f"{group}={option}"])
    c = OmegaConf.to_container(cfg[group], resolve=False)
    assert c is not None
    if group in ("budget",):
        assert 0 < float(cfg.budget.fraction) <= 1


@pytest.mark.parametrize("exp", sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml")))
def test_every_experiment_composes_and_names_its_command(exp):
    text = (ROOT / "experiments" / f"{exp}.yaml").read_text().splitlines()
    assert text[0] == "# @package _global_"
    assert text[1].startswith("# ") and f"experiment={exp}" in text[1], "line 2 must be the exact command"
    cfg = compose([f"experiment={exp}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.experiment_name


def test_required_groups_and_launchers_exist():
    for g in GROUPS:
        assert _options(g), g
    for name in ["medical_o1", "medical_o1_demo", "local"]:
        assert name in _options("pool")
    for name in ["smollm2_135m", "tiny", "llama31_8b_instruct", "qwen3_1_7b", "qwen3_4b", "qwen3_8b"]:
        assert name in _options("model")
    assert {"p1", "p10", "full"} <= set(_options("budget"))
    assert {"lora_paper", "cpu_demo"} <= set(_options("train"))
    assert {"online", "offline", "disabled"} <= set(_options("logger"))
    cfg = compose(["hydra/launcher=joblib"], config_name="config")
    assert cfg is not None


def test_lora_paper_matches_method():
    cfg = compose(["train=lora_paper"])
    t = cfg.train
    assert (t.lora.r, t.lr, t.scheduler, t.epochs, t.max_length) == (8, 1e-4, "cosine", 3, 8192)
    assert list(t.lora.target_modules) == ["q_proj", "k_proj", "v_proj"]
    assert (t.lora.alpha, t.lora.dropout, t.warmup_ratio, t.effective_batch) == (16, 0.05, 0.03, 16)


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml")))
def test_every_sweep_composes(sweep):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    text = (ROOT / "sweeps" / f"{sweep}.yaml").read_text().splitlines()
    assert text[0] == "# @package _global_" and f"sweep={sweep}" in text[1]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=[f"sweep={sweep}"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params, "a sweep defines hydra.sweeper.params"


@pytest.mark.parametrize("launcher,target", [("basic", "BasicLauncher"), ("joblib", "JoblibLauncher"),
                                             ("submitit_local", "LocalLauncher"), ("submitit_slurm", "SlurmLauncher"),
                                             ("diq_slurm", "DiqSlurmLauncher"), ("slurm_cluster", "DiqSlurmLauncher")])
def test_launchers_compose(launcher, target):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm_cluster":
        assert cfg.hydra.launcher.gpus_per_node == 1 and "export WANDB_MODE=offline" in cfg.hydra.launcher.setup

"""Every config option and every experiment composes."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose

GROUPS = ["pool", "model", "selection", "budget", "train", "eval", "logger", "scoring"]


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))  # _x: shared parts


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


@pytest.mark.parametrize("group,option", [(g, o) for g in ("pool", "model", "eval") for o in _options(g)])
def test_every_variant_option_is_typed_by_its_variant_schema(group, option):
    """Keys differ by variant (a model by its source, a pool by its origin, an evaluation by its form): each option
    names its variant's schema first, and the schema holds exactly the option's keys (nothing added to hashes)."""
    from diq.config.schema import VARIANTS

    defaults = OmegaConf.load(CONF / group / f"{option}.yaml").get("defaults") or []
    names = [d for d in defaults if isinstance(d, str) and d.startswith("_schema_")]
    assert names and defaults[0] == names[0], f"conf/{group}/{option}.yaml must name _schema_<variant> first"
    schema = VARIANTS[group][names[0].removeprefix("_schema_")]
    cfg = compose([f"{group}={option}"])
    assert OmegaConf.get_type(cfg[group]) is schema
    assert set(cfg[group]) == set(OmegaConf.structured(schema)), "the schema adds or lacks a key"
    if group == "model":
        assert VARIANTS["model"][str(cfg.model.source)] is schema  # the variant is the source the code resolves


@pytest.mark.parametrize("group,option,key,value,where", [
    ("pool", "medical_o1", "feilds", "{question: q}", "PoolConf"),      # a misspelt key in a variant
    ("pool", "medical_o1_demo", "hub_config", "en", "PoolConf"),       # a Hub key on a file pool
    ("model", "qwen3_8b", "wheel", "x.whl", "ModelConf"),              # the wheel key only exists for smollm2_wheel
    ("eval", "pubmedqa_local", "bundle", "m1", "EvalConf"),            # a bundle key on a task-list evaluation
])
def test_a_key_foreign_to_the_variant_fails_at_composition(tmp_path, group, option, key, value, where):
    """A user's own variant file with a wrong key fails when composed, naming the key and the schema, before any run
    folder or compute exists (an override of that key fails too)."""
    from hydra.errors import ConfigCompositionException

    (tmp_path / group).mkdir()
    text = (CONF / group / f"{option}.yaml").read_text()
    (tmp_path / group / "mine.yaml").write_text(text + f"{key}: {value}\n")
    with pytest.raises(ConfigCompositionException) as e:
        compose([f"hydra.searchpath=[file://{tmp_path}]", f"{group}=mine"])
    msg = f"{e.value} {e.value.__cause__}"
    assert key in msg and where in msg, msg
    with pytest.raises(ConfigCompositionException):
        compose([f"{group}={option}", f"{group}.{key}={value}"])


@pytest.mark.parametrize("override", ["model.tiny.hidden=wide", "pool.limit=many", "eval.batch_size=big",
                                      "eval.holdout=1.5"])
def test_a_wrong_type_in_a_variant_fails_at_composition(override):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as e:
        compose(["model=tiny", override])
    assert override.split("=")[0].split(".")[-1] in f"{e.value} {e.value.__cause__}"

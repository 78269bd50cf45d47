"""The tools beside ``diq.run`` (``diq.stages.score.difficulty``, ``diq.practice``) compose their settings from the same ``conf/``
with the same Hydra overrides, so that a pool, a judge or a classifier recipe is configured in one place."""

from __future__ import annotations

from omegaconf import DictConfig

from diq import CONF  # noqa: E402 - re-exported
from diq.errors import DiqError

JUDGE_OVERRIDES = ("judge=", "judge.", "+judge.", "+model@judge.model=", "model@judge.model=")  # the judge group's keys


def compose_conf(overrides: list[str], allowed: tuple[str, ...], what: str, fix: str) -> DictConfig:
    """``conf/config.yaml`` composed with ``overrides`` exactly as ``diq.run`` composes it (typed schemas included).
    Only overrides starting with one of ``allowed`` apply to the calling tool; any other is refused by name."""
    from hydra import compose, initialize_config_dir

    from diq.config import schema as _schemas  # noqa: F401 - the typed schemas conf/ names

    bad = [o for o in overrides if not o.lstrip("+~").startswith(tuple(a.lstrip("+~") for a in allowed))]
    if bad:
        raise DiqError(f"{bad}: only {what} overrides apply here\n  fix: {fix}")
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except Exception as e:  # noqa: BLE001 - Hydra's composition errors name the override; say so without a traceback
        raise DiqError(f"overrides {list(overrides)}: {e}\n  fix: {fix}") from None


def group_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def group_config(group: str, name: str) -> DictConfig:
    """One option of a config group (``conf/<group>/<name>.yaml``) as ``diq run`` composes it: its defaults (the
    variant's schema, shared values) applied. Tools that take ``--model``/``--pool`` names read configs this way."""
    from hydra import compose, initialize_config_dir

    from diq.config import schema as _schemas  # noqa: F401 - the typed schemas conf/ names

    if name not in group_names(group):
        raise DiqError(f"no {group} config {name!r} (conf/{group}/{name}.yaml)\n  fix: one of {', '.join(group_names(group))}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"{group}={name}"])[group]

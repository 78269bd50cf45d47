"""Components named in config by ``_target_`` (a dotted path), built with Hydra's ``instantiate``; a target that cannot
be imported is a named error that says which config key holds it."""

from __future__ import annotations

from diq.errors import DiqError


def component(target: str, where: str):
    """The callable ``target`` names, as a partial (its arguments come at call time)."""
    from hydra.utils import instantiate

    try:
        return instantiate({"_target_": target, "_partial_": True})
    except Exception as e:  # noqa: BLE001 - Hydra's InstantiationException hides the cause; name the key instead
        raise DiqError(f"{where}={target}: cannot be imported ({e.__cause__ or e})\n  fix: a dotted path to a "
                       f"function or class, e.g. diq.stages.score.influence_score.score_influence (see conf/)") from None

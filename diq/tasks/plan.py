"""The evaluation, resolved once per run (compare lm-eval's ``TaskManager``/``get_task_dict``): the task specs, each
scored task's documents after its hold-out, the validation sources and the hub-fixture root. ``EvalPlan.build``
runs the one preflight (every file read and checked, before any compute); the pool stage decontaminates against
``docs``, the score stage draws its validation set through ``validation`` (memoised: a planted pool and the scorers
share one draw) and the evaluate stage generates from ``specs`` and ``docs``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from diq.artifacts import sha256_obj
from diq.engine.hub import fixture_root


@dataclass
class EvalPlan:
    cfg: DictConfig  # the eval block
    specs: list[dict]  # resolved task specs (diq.tasks.specs.task_specs)
    docs: dict[str, list[dict] | None]  # task → scored documents (None: an lm-eval task read by lm-eval)
    fixtures: str | None = None  # the hub-fixture root every hub read of this run uses (hub_fixtures=)
    _validation: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, eval_cfg: DictConfig, fixtures: str | None = None) -> EvalPlan:
        from diq.tasks.specs import preflight_plan

        with fixture_root(fixtures):
            specs, docs = preflight_plan(eval_cfg)
        return cls(cfg=eval_cfg, specs=specs, docs=docs, fixtures=str(fixtures) if fixtures else None)

    def hub(self) -> AbstractContextManager:
        """Every hub read inside this block goes to the plan's fixtures (when it has any)."""
        return fixture_root(self.fixtures)

    def validation(self, vcfg, seed: int) -> tuple[list[dict], dict]:
        """The validation set for ``scoring.validation`` = ``vcfg`` and ``seed``, drawn once per plan."""
        from diq.tasks.validation import build_validation

        key = sha256_obj([OmegaConf.to_container(vcfg, resolve=True) if isinstance(vcfg, DictConfig) else vcfg,
                          int(seed)])
        if key not in self._validation:
            with self.hub():
                self._validation[key] = build_validation(vcfg, int(seed), self.cfg, plan=self)
        recs, info = self._validation[key]
        return [dict(r) for r in recs], dict(info)

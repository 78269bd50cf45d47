"""Typed configs: dataclass schemas registered in Hydra's ConfigStore (as ``<group>/_schema``) and named first in the
defaults of ``conf/train``, ``conf/budget`` and ``conf/scoring``. A mistyped key or a wrong type then fails when the
config is composed (before any run folder, W&B run or compute exists), with the key named; ``diq.run.validate`` checks
ranges and cross-field rules afterwards.

Importing ``diq.run`` registers them; code that composes ``conf/`` itself calls ``register()`` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class LoraConf:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])
    seed: int = 0


@dataclass
class TrainConf:
    lora: LoraConf = field(default_factory=LoraConf)
    lr: float = 1.0e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    epochs: int = 3
    max_length: int = 8192
    effective_batch: int = 16
    micro_batch: int = 2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    dtype: str = "bfloat16"
    device: str = "cuda"
    gradient_checkpointing: bool = True
    seed: int = 0
    num_processes: int = 1


@dataclass
class BudgetConf:
    name: str = "p10"
    fraction: float = 0.1


@dataclass
class WarmupConf:
    enabled: bool = False
    fraction: float = 0.05
    epochs: int = 1
    lr: float = 1.0e-4
    max_length: int = 8192
    checkpoints: str = "last"
    seed: int = 0


@dataclass
class InfluenceConf:
    _target_: str = "diq.stages.score.influence_score.score_influence"
    max_length: int = 8192
    max_response_tokens: Optional[int] = None
    batch_tokens: Any = "auto"          # "auto" or an int
    proj_dim: Optional[int] = None
    projection: str = "rademacher"
    proj_nnz: int = 1
    proj_seed: int = 0
    normalize: str = "none"
    shards: int = 1
    shard_index: Optional[int] = None
    dtype: str = "float32"
    device: str = "auto"
    warmup: WarmupConf = field(default_factory=WarmupConf)


@dataclass
class LessWarmupConf:
    fraction: float = 0.05
    epochs: int = 4
    lr: float = 2.0e-5
    max_length: int = 8192
    seed: int = 0


@dataclass
class LessConf:
    _target_: str = "diq.stages.score.less_score.score_less"
    max_length: int = 8192
    max_response_tokens: Optional[int] = None
    batch_tokens: Any = "auto"
    proj_dim: int = 8192
    projection: str = "sjlt"
    proj_nnz: int = 1
    proj_seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    lora: LoraConf = field(default_factory=lambda: LoraConf(r=128, alpha=512, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj"]))
    warmup: LessWarmupConf = field(default_factory=LessWarmupConf)


@dataclass
class EmbedConf:  # similarity and the model-based proxies
    max_length: int = 8192
    batch_tokens: int = 4096
    dtype: str = "float32"
    device: str = "auto"


@dataclass
class SimilarityConf(EmbedConf):
    _target_: str = "diq.stages.score.similarity_score.score_similarity"


@dataclass
class ProxiesConf(EmbedConf):
    loss_from_influence: bool = True


@dataclass
class ValidationConf:
    per_task: int = 20
    seed: int = 0
    sources: Any = "auto"               # "auto" or a list of sources


@dataclass
class ScorerConf:
    _target_: str = ""


@dataclass
class ScoringConf:
    model: Any = None                   # null or a model config
    difficulty: Any = None              # a conf/scoring/difficulty/<source>.yaml
    influence: InfluenceConf = field(default_factory=InfluenceConf)
    validation: ValidationConf = field(default_factory=ValidationConf)
    length: ScorerConf = field(default_factory=lambda: ScorerConf("diq.stages.score.difficulty_score.score_length"))
    ifd: ScorerConf = field(default_factory=lambda: ScorerConf("diq.stages.score.difficulty_score.score_ifd"))
    proxies: ProxiesConf = field(default_factory=ProxiesConf)
    similarity: SimilarityConf = field(default_factory=SimilarityConf)
    less: LessConf = field(default_factory=LessConf)


SCHEMAS = {"train": TrainConf, "budget": BudgetConf, "scoring": ScoringConf}


def register() -> None:
    cs = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        cs.store(group=group, name="_schema", node=node)


register()

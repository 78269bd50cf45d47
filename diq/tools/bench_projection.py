"""``python -m diq.tools.bench projection``: the cost of projecting LESS-sized LoRA gradients, sparse JL against the dense
Rademacher projector (``diq/engine/projection.py``)."""

from __future__ import annotations

import platform
import time

import torch
from omegaconf import OmegaConf

from diq.config.compose import group_config
from diq.tools.bench_common import CONF
from diq.tools.bench_scale import _versions


def add_projection_parser(sub) -> None:
    p = sub.add_parser("projection", help="sparse JL vs dense Rademacher projection of LESS-sized gradients")
    p.add_argument("--models", nargs="+", default=["tiny", "smollm2_135m"])
    p.add_argument("--k", type=int, default=8192)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--dense-modules", type=int, default=8, help="modules the dense projector is timed on")
    p.add_argument("--out", default="projection.json")


def bench_projection(models: list[str], k: int, batch: int, dense_modules: int) -> dict:
    """Seconds to project one batch of LESS-sized LoRA gradients (scoring.less.lora: r=128 on q/k/v/o) to k dims:
    the sparse JL against the dense Rademacher projector. The dense one is timed on its first ``dense_modules``
    modules (its cost is linear in d) and extrapolated to all of them, since the full one takes minutes per batch."""
    from diq.engine.gradients import GradientCapture
    from diq.engine.lora import attach_lora
    from diq.engine.models import load_model, resolve_model
    from diq.engine.projection import RademacherProjector, SparseJLProjector

    lcfg = OmegaConf.load(CONF / "scoring" / "default.yaml").less.lora
    lcfg.seed, lcfg.dropout = 0, 0.0
    rows = []
    for name in models:
        model = attach_lora(load_model(resolve_model(group_config("model", name))), lcfg)
        cap = GradientCapture(model)
        d = sum(cap.dims.values())
        gen = torch.Generator().manual_seed(0)
        g = {n: torch.randn(batch, cap.dims[n], generator=gen) for n in cap.names}
        sj = SparseJLProjector(cap.names, cap.dims, k)
        sj(g)  # draws the tables once (O(d))
        t = time.perf_counter()
        sj(g)
        t_sj = time.perf_counter() - t
        sub = cap.names[:dense_modules]
        dims = {n: cap.dims[n] for n in sub}
        dense = RademacherProjector(sub, dims, k)
        t = time.perf_counter()
        dense({n: g[n] for n in sub})
        t_sub = time.perf_counter() - t
        frac = sum(dims.values()) / d
        rows.append({"model": name, "lora_modules": len(cap.names), "d": d, "k": k, "batch": batch,
                     "sjlt_seconds_per_batch": t_sj, "sjlt_table_mb": d * (8 + 4) / 2**20,
                     "rademacher_seconds_per_batch": t_sub / frac, "rademacher_timed_modules": len(sub),
                     "rademacher_extrapolated": len(sub) < len(cap.names), "speedup": t_sub / frac / t_sj})
        print(f"[bench] {name}: d={d:,}, k={k}: sparse JL {t_sj:.3f} s/batch, dense Rademacher "
              f"{t_sub / frac:.1f} s/batch → {t_sub / frac / t_sj:,.0f}×", flush=True)
    return {"rows": rows, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "versions": _versions()}

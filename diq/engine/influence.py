"""Gradient influence of pool samples on the validation set.

DIQ: Dot(z) = g(z; θ̂) · ḡ_val with ḡ_val = mean_{z'∈D_val} g(z'; θ̂), the gradients of the mean response-token
loss w.r.t. the LoRA parameters. Exact by default (no projection needed: ḡ_val is one vector); optional
``proj_dim`` (per-module Rademacher JL) and ``normalize: cosine``; θ̂ = base + fresh LoRA or warm-up
checkpoint(s), checkpoint scores weighted by their mean learning rate.

LESS (Xia et al. 2024): Adam-preconditioned training features Γ = m'/√(v'+ε) with m' = β1·m + (1-β1)·g,
v' = β2·v + (1-β2)·g² (no bias correction), plain validation gradients, both projected and L2-normalised;
score = Σ_ckpt w_ckpt · cos(Γ_train, g_val), then the mean over each task's validation items and the max
over tasks.
"""

from __future__ import annotations

import numpy as np
import torch

from diq.engine.gradients import GradientCapture, iter_per_sample_grads
from diq.engine.projection import make_projector


def mean_gradient(model, encoded, pad_id, batch_tokens: int, desc: str = "val grads") -> dict[str, torch.Tensor]:
    """ḡ = mean of per-sample gradients (each sample weighted equally), per module, fp32."""
    total: dict[str, torch.Tensor] = {}
    for gb in iter_per_sample_grads(model, encoded, pad_id, batch_tokens, desc=desc):
        for n, g in gb.grads.items():
            s = g.sum(0)
            total[n] = s if n not in total else total[n].add_(s)
    return {n: v / len(encoded) for n, v in total.items()}


def dot_scores(model, encoded, pad_id, target: dict[str, torch.Tensor], batch_tokens: int,
               proj_dim: int | None = None, proj_seed: int = 0, normalize: str = "none",
               desc: str = "influence", shard: tuple[int, int] = (0, 1), projection: str = "rademacher",
               proj_nnz: int = 1) -> dict[str, np.ndarray]:
    """Per-sample Dot (or cosine) with ``target``; also the per-sample loss and gradient norm (free by-products).

    With ``proj_dim`` both sides are projected with the same per-module projection first (``projection``: rademacher | sjlt). With ``shard``
    only that shard's batches are computed; other samples are NaN (see ``merge_shards``)."""
    if normalize not in ("none", "cosine"):
        from diq.errors import DiqError

        raise DiqError(f"scoring.influence.normalize={normalize!r}; choose none or cosine")
    names = sorted(target)
    n = len(encoded)
    dot, norm, loss = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    proj = None
    if proj_dim:
        dims = {k: v.numel() for k, v in target.items()}
        proj = make_projector(projection, names, dims, proj_dim, seed=proj_seed, nnz=proj_nnz,
                              device=next(iter(target.values())).device)
        t_proj = proj({k: v[None] for k, v in target.items()})[0]
        t_norm = float(t_proj.norm())
    else:
        t_norm = float(torch.sqrt(sum((v.double() ** 2).sum() for v in target.values())))
    for gb in iter_per_sample_grads(model, encoded, pad_id, batch_tokens, desc=desc, shard=shard):
        idx = np.asarray(gb.index)
        if proj is not None:
            feats = proj(gb.grads)
            d = (feats @ t_proj).double()
            nrm = feats.double().norm(dim=1)
        else:
            d = sum((gb.grads[k].double() @ target[k].double()) for k in names)
            nrm = torch.sqrt(sum((gb.grads[k].double() ** 2).sum(1) for k in names))
        dot[idx] = d.cpu().numpy()
        norm[idx] = nrm.cpu().numpy()
        loss[idx] = gb.losses.double().numpy()
    score = dot if normalize == "none" else dot / np.maximum(norm * t_norm, 1e-30)
    return {"score": score, "dot": dot, "grad_norm": norm, "loss": loss}


def merge_shards(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine shard results (each NaN outside its own samples); every sample must come from exactly one shard."""
    out = {}
    for key in parts[0]:
        stack = np.stack([p[key] for p in parts])
        have = ~np.isnan(stack)
        if not (have.sum(0) == 1).all():
            raise RuntimeError(f"shards do not partition the pool for {key!r}: "
                               f"{int((have.sum(0) != 1).sum())} samples covered ≠ 1 times")
        out[key] = stack[have.argmax(0), np.arange(stack.shape[1])]
    return out


# ----------------------------------------------------------------------------------------------- LESS
def adam_features(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, beta1: float = 0.9, beta2: float = 0.999,
                  eps: float = 1e-8, step: float | None = None) -> torch.Tensor:
    """LESS's Adam-preconditioned per-sample feature (no bias correction): m'/√(v'+ε). With ``step`` (the
    optimizer's step count before this update): torch's Adam update instead, m̂/(√v̂+ε) with bias corrections —
    the convention of dattri-llm's ``precondition`` (used by the side-by-side bench to separate conventions)."""
    m2 = beta1 * m + (1 - beta1) * g
    v2 = beta2 * v + (1 - beta2) * g * g
    if step is None:
        return m2 / torch.sqrt(v2 + eps)
    t = step + 1
    return (m2 / (1 - beta1 ** t)) / (torch.sqrt(v2 / (1 - beta2 ** t)) + eps)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm, the norm accumulated in float64: torch's fp32 ``norm`` on CPU sums sequentially
    and is 5e-4 short over 14.7 M coordinates (exact LESS features of SmolLM2), which shifted every exact LESS score
    by ~1e-3; in float64 it costs ~40 ms per such row."""
    nrm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float64)
    return x / nrm.clamp_min(1e-30).to(x.dtype)


def less_combine(train_feats: list[torch.Tensor], val_feats: list[torch.Tensor], weights: list[float],
                 val_tasks: list[str], dtype: torch.dtype = torch.float64) -> np.ndarray:
    """LESS scoring from per-checkpoint features ([N, k] train, [V, k] validation, already normalised):
    Σ_c w_c · T_c V_cᵀ → [N, V]; mean over each task's validation items → [N, tasks]; max over tasks → [N].
    The inner products accumulate in ``dtype`` (float64; the LESS side by side also reports fp32)."""
    sim = sum(w * _matmul_t(t, v, dtype) for t, v, w in zip(train_feats, val_feats, weights))
    tasks = sorted(set(val_tasks))
    per_task = torch.stack([sim[:, [i for i, t in enumerate(val_tasks) if t == task]].mean(1) for task in tasks], 1)
    return per_task.max(1).values.cpu().numpy()


def _matmul_t(t: torch.Tensor, v: torch.Tensor, dtype: torch.dtype, chunk_bytes: int = 2**28) -> torch.Tensor:
    """t @ vᵀ in ``dtype``, converting t in row blocks of ≤ ``chunk_bytes`` (exact [N, 14.7 M] features of SmolLM2
    would otherwise need a float64 copy of all of them at once). Projected features (k = 8192) fit in one block up
    to 4,096 rows."""
    vd = v.to(dtype)
    rows = max(1, chunk_bytes // (8 * max(1, t.shape[1])))
    return torch.cat([t[i: i + rows].to(dtype) @ vd.T for i in range(0, t.shape[0], rows)]) if t.shape[0] else \
        t.new_zeros((0, v.shape[0]), dtype=dtype)


def less_features(model, encoded, pad_id, batch_tokens: int, proj_dim: int, proj_seed: int,
                  adam_state: dict[str, tuple[torch.Tensor, torch.Tensor]] | None, desc: str,
                  projection: str = "sjlt", proj_nnz: int = 1) -> torch.Tensor:
    """[N, proj_dim] L2-normalised features: Adam-preconditioned when ``adam_state`` (module → (m, v)) is given
    (training side), plain gradients otherwise (validation side). ``proj_dim=None``: the exact [N, d] features."""
    cap = GradientCapture(model)
    if proj_dim:
        proj = make_projector(projection, cap.names, cap.dims, proj_dim, seed=proj_seed, nnz=proj_nnz,
                              device=next(p for p in model.parameters() if p.requires_grad).device)
    else:
        def proj(grads):
            return torch.cat([grads[n] for n in cap.names], 1)
    out = torch.zeros(len(encoded), proj_dim or sum(cap.dims.values()))
    for gb in iter_per_sample_grads(model, encoded, pad_id, batch_tokens, desc=desc):
        grads = gb.grads
        if adam_state is not None:
            grads = {n: adam_features(g, *[s.reshape(1, -1).to(g) for s in adam_state[n][:2]],
                                      step=adam_state[n][2] if len(adam_state[n]) > 2 else None)
                     for n, g in grads.items()}
        out[gb.index] = l2_normalize(proj(grads)).cpu()
    return out

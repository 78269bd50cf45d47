"""Shared pieces of the benchmarks (``python -m diq.tools.bench``): peak memory, agreement metrics, the bench model, the
LESS-style batch-size-1 reference loop, one timed training epoch, and quadrant selection at scale."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from diq import CONF  # noqa: E402
from diq.engine.formatting import collate, encode, per_sample_mean_loss
from diq.engine.gradients import GradientCapture
from diq.engine.influence import dot_scores, mean_gradient
from diq.engine.lora import attach_lora
from diq.engine.models import load_model
from diq.engine.projection import RademacherProjector


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def overlap(a: np.ndarray, b: np.ndarray, frac: float) -> float:
    k = max(1, int(round(frac * len(a))))
    return len(set(np.argsort(-a, kind="stable")[:k]) & set(np.argsort(-b, kind="stable")[:k])) / k


def norm_scale(grad_norm, target: dict) -> float:
    """max_i ‖g_i‖ · ‖ḡ_val‖: the scale that fp32 rounding errors of a Dot score grow with (Cauchy–Schwarz bound).
    ``max |Δ| / norm_scale`` near fp32 epsilon × √terms is rounding; far above it is a bug. ``max |Dot| / norm_scale``
    (``cancellation``) says how much the scores cancel, i.e. how far a scale-relative error is inflated by it."""
    t = float(torch.sqrt(sum((v.double() ** 2).sum() for v in target.values())))
    return float(np.nanmax(np.asarray(grad_norm, float))) * t


def compare(name: str, exact: np.ndarray, other: np.ndarray, cost: float) -> dict:
    return {"name": name, "cost_over_exact": cost, "spearman": float(spearmanr(exact, other).statistic),
            "top1_overlap": overlap(exact, other, 0.01), "top10_overlap": overlap(exact, other, 0.10)}


def _lora(r=8, seed=0):
    d = {"r": r, "alpha": 2 * r, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj"], "seed": seed}
    return OmegaConf.create(d)


def _model(path, seed=0, dtype="float32", device="cpu", keep_layers=None, lora_layers=None):
    model = load_model(path, dtype=dtype, device=device)
    if keep_layers is not None:  # a shallower scoring model: a subset of the decoder layers
        layers = model.model.layers
        model.model.layers = torch.nn.ModuleList([layers[i] for i in keep_layers])
        model.config.num_hidden_layers = len(keep_layers)
        for i, layer in enumerate(model.model.layers):
            layer.self_attn.layer_idx = i
    if lora_layers is not None:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(seed)
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none",
                                                 target_modules=["q_proj", "k_proj", "v_proj"],
                                                 layers_to_transform=lora_layers, task_type="CAUSAL_LM"))
    else:
        model = attach_lora(model, _lora(seed=seed))
    return model.eval()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed_scores(model, tok, pool_enc, val_enc, batch_tokens, **kw):
    target = mean_gradient(model, val_enc, tok.pad_token_id, batch_tokens, desc="val grads")  # also warms up
    _sync()
    t = time.perf_counter()
    res = dot_scores(model, pool_enc, tok.pad_token_id, target, batch_tokens, **kw)
    _sync()
    return res, time.perf_counter() - t, target


def loop_reference(model, tok, pool_enc, target, proj_dim: int):
    """LESS-style: one sample at a time, loss.backward(), flatten the LoRA gradient, project it."""
    cap = GradientCapture(model)
    names, dims = cap.names, cap.dims
    params = dict(model.named_parameters())
    device = params[names[0] + ".weight"].device
    # materialised once, like a dense LESS/TRAK projection (not timed): the loop pays only the matmul
    proj = RademacherProjector(names, dims, proj_dim, seed=0, keep_bytes=16 * 2**30, keep_float=True, device=device)
    for m in range(len(names)):
        proj.block(m)
    flat_target = torch.cat([target[n].double() for n in names])
    dots = np.zeros(len(pool_enc))
    t = time.perf_counter()
    for i, e in enumerate(pool_enc):
        b = {k: v.to(device) for k, v in collate([e], tok.pad_token_id).items()}
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        per_sample_mean_loss(logits, b["labels"])[0].backward()
        g = torch.cat([params[n + ".weight"].grad.reshape(-1) for n in names])
        _ = proj({n: params[n + ".weight"].grad.reshape(1, -1) for n in names})  # the projected feature (LESS)
        dots[i] = float(g.double() @ flat_target)  # a host sync per sample, as in a LESS loop that stores features
    _sync()
    return dots, time.perf_counter() - t


def train_epoch_time(path, tok, records, max_len, dtype, device) -> float:
    from diq.engine.finetune import plan_steps

    cfg = OmegaConf.load(CONF / "train" / "lora_paper.yaml")
    cfg.lora.seed = 0
    model = attach_lora(load_model(path, dtype=dtype, device=device), cfg.lora)
    model.train()
    enc = [encode(tok, r, max_len) for r in records]
    steps = plan_steps(enc, 16, 4, 1, 0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    from diq.engine.formatting import response_token_losses

    _sync()
    t = time.perf_counter()
    for mbs in steps:
        n_tok = sum(enc[i].n_response for mb in mbs for i in mb)
        for mb in mbs:
            b = {k: v.to(device) for k, v in collate([enc[i] for i in mb], tok.pad_token_id).items()}
            ce, _ = response_token_losses(model, b)
            (ce.sum() / n_tok).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync()
    return time.perf_counter() - t


def selection_at_scale(n: int = 1_000_000) -> dict:
    import tracemalloc

    from diq.stages.select.quadrants import select

    rng = np.random.default_rng(0)
    ids = np.char.add("s", np.arange(n).astype(str))
    d, i = rng.normal(size=n), rng.normal(size=n)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc: the peak of what selection allocates
    t = time.perf_counter()
    chosen, _ = select(ids, d, i, n // 100)
    secs = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs = (ids.nbytes + d.nbytes + i.nbytes) / 2**20
    return {"n": n, "k": len(chosen), "seconds": secs, "peak_alloc_mb": peak / 2**20, "inputs_mb": inputs}

"""``python -m diq.tools.bench influence --against dattri``: our exact Dot engine side by side with dattri-llm's Grad-Dot.

Both engines get the same model (same LoRA init), the same samples and validation items, the same dtype, device,
threads and token-budget batches, and each runs in a fresh process (spawned), so its wall time, tokens/s and peak
RSS (and peak GPU memory) are its own. dattri-llm is configured as its README's first recipe recommends:
factorized per-sample ``linear_io`` hooks (here on the LoRA A/B layers, the parameters DIQ differentiates), an
``OffloadCallback`` with per-sample recording around our own forward/backward loop (any loop that calls
``backward()``), then ``TracInAttributor.attribute_from_cache`` with one checkpoint and no projection (exact).
TracIn scores every pool sample against every validation item; Dot against the *mean* validation gradient is the
mean over the validation columns (the inner product is linear), which is what we compare.
The loss is the same for both: the sum over samples of each sample's mean response-token cross-entropy, so every
per-sample gradient is that sample's own.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time

import numpy as np


def _setup(spec: dict):
    import torch
    from omegaconf import OmegaConf

    from diq.config.compose import group_config
    from diq.engine.formatting import encode
    from diq.engine.models import load_tokenizer, resolve_model
    from diq.stages.pool.load import load_pool
    from diq.tasks.validation import build_validation
    from diq.tools.bench_common import _model

    torch.set_num_threads(spec["threads"])
    path = resolve_model(group_config("model", spec["model"]))
    tok = load_tokenizer(path)
    records = load_pool(group_config("pool", spec["pool"]))[: spec["n"]]
    val, _ = build_validation(OmegaConf.create({"per_task": spec["val_per_task"], "sources": [
        {"name": "pubmedqa", "kind": "pubmedqa_pqal_train"}]}), 0)
    pool_enc = [encode(tok, r, spec["max_len"]) for r in records]
    val_enc = [encode(tok, r, spec["max_len"]) for r in val]
    if spec.get("lora"):  # LESS's adapter (r, alpha, q/k/v/o) instead of the Dot bench's r = 8 on q/k/v
        from diq.engine.lora import attach_lora
        from diq.engine.models import load_model

        model = attach_lora(load_model(path, dtype=spec["dtype"], device=spec["device"]),
                            OmegaConf.create(spec["lora"])).eval()
    else:
        model = _model(path, seed=0, dtype=spec["dtype"], device=spec["device"])
    return tok, model, pool_enc, val_enc


def _peak(device: str) -> dict:
    import resource

    import torch

    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if device.startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_diq(spec: dict) -> dict:
    from diq.engine.influence import dot_scores, mean_gradient

    tok, model, pool_enc, val_enc = _setup(spec)
    _sync(spec["device"])
    t = time.perf_counter()
    target = mean_gradient(model, val_enc, tok.pad_token_id, spec["batch_tokens"], desc="val grads")
    res = dot_scores(model, pool_enc, tok.pad_token_id, target, spec["batch_tokens"])
    _sync(spec["device"])
    seconds = time.perf_counter() - t
    from diq.tools.bench_common import norm_scale

    return {"scores": np.asarray(res["dot"], float).tolist(), "seconds": seconds,
            "norm_scale": norm_scale(res["grad_norm"], target), **_peak(spec["device"])}


def dattri_collect(model, pad_id: int, encs, where: str, dev: str, batch_tokens: int, optimizer=None) -> None:
    """dattri-llm's per-sample capture (factorized ``linear_io`` hooks on the LoRA A/B layers, ``OffloadCallback``
    into a store at ``where``) around our own token-budget forward/backward batches; with ``optimizer`` its
    Adam-preconditioned capture (LESS)."""
    from dattri_llm import GradientStorageManager, HookManager, HookManagerConfig, OffloadCallback

    from diq.engine.formatting import collate, per_sample_mean_loss
    from diq.engine.gradients import token_budget_batches

    cfg = HookManagerConfig(linear_io=[r"lora_A\.default$", r"lora_B\.default$"])
    store = GradientStorageManager(where)
    hm = HookManager(model, config=cfg, optimizer=optimizer,
                     callbacks=[OffloadCallback(offload_interval=1, file_manager=store, recording_type="per_sample")])
    with hm.collect():
        for batch in token_budget_batches([len(e.input_ids) for e in encs], batch_tokens):
            b = {k: v.to(dev) for k, v in collate([encs[i] for i in batch], pad_id).items()}
            model.zero_grad(set_to_none=True)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            per_sample_mean_loss(logits, b["labels"]).sum().backward()
    hm.remove()


def run_dattri(spec: dict) -> dict:
    import torch
    from dattri_llm import AttributionArguments, TracInAttributor

    from diq.engine.gradients import token_budget_batches

    tok, model, pool_enc, val_enc = _setup(spec)
    dev = spec["device"]
    tmp = tempfile.mkdtemp(prefix="diq-dattri-")

    def collect(encs, where: str) -> None:
        dattri_collect(model, tok.pad_token_id, encs, where, dev, spec["batch_tokens"])

    _sync(dev)
    t = time.perf_counter()
    order_tr = [i for b in token_budget_batches([len(e.input_ids) for e in pool_enc], spec["batch_tokens"]) for i in b]
    collect(pool_enc, f"{tmp}/train")
    collect(val_enc, f"{tmp}/test")
    score = TracInAttributor(AttributionArguments(output_dir=f"{tmp}/scores", seed=0)).attribute_from_cache(
        f"{tmp}/train", f"{tmp}/test")
    _, mat = score.agnostic_matrix()
    mat = mat.double().cpu().numpy() if isinstance(mat, torch.Tensor) else np.asarray(mat, float)
    _sync(dev)
    seconds = time.perf_counter() - t
    dots = np.empty(len(pool_enc))
    dots[order_tr] = mat.mean(1)  # rows come in store (collection) order
    import shutil
    from pathlib import Path

    store_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20
    shutil.rmtree(tmp, ignore_errors=True)
    return {"scores": dots.tolist(), "seconds": seconds, "store_mb": store_mb, **_peak(dev)}


def _child(fn_name: str, spec: dict, q, module: str = __name__) -> None:
    try:
        import importlib

        q.put(getattr(importlib.import_module(module), fn_name)(spec))
    except Exception as e:  # noqa: BLE001 - reported by the parent
        import traceback

        q.put({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]})


def _spawned(fn_name: str, spec: dict, module: str = __name__) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn_name, spec, q, module))
    p.start()
    res = q.get()
    p.join()
    if "error" in res:
        raise RuntimeError(f"{fn_name} failed: {res['error']}\n{res.get('traceback', '')}")
    return res


def compare_dattri(spec: dict) -> dict:
    """Both engines, each in its own process; agreement of dattri's scores with ours."""
    from scipy.stats import spearmanr

    from diq.tools.bench_common import overlap

    ours = _spawned("run_diq", spec)
    peer = _spawned("run_dattri", spec)
    a, b = np.asarray(ours.pop("scores")), np.asarray(peer.pop("scores"))
    tokens = spec["tokens"]
    for r in (ours, peer):
        r["tokens_per_s"] = tokens / r["seconds"]
        r["samples_per_s"] = spec["n_actual"] / r["seconds"]
    return {"ours": ours, "dattri_llm": peer,
            "dattri_over_ours_time": peer["seconds"] / ours["seconds"],
            "agreement": {"spearman": float(spearmanr(a, b).statistic),
                          "max_abs_err_over_scale": float(np.abs(a - b).max() / np.abs(a).max()),
                          "top10_overlap": overlap(a, b, 0.10),
                          # the same error over max‖g‖·‖ḡ‖ (what fp32 rounding scales with; bench_common.norm_scale)
                          "max_abs_err_over_norms": float(np.abs(a - b).max() / ours["norm_scale"])},
            "cancellation": float(np.abs(a).max() / ours["norm_scale"]),
            "dattri_setup": "HookManagerConfig(linear_io=[lora_A, lora_B]) + OffloadCallback(per_sample) around "
                            "diq's batches, TracInAttributor.attribute_from_cache, one checkpoint, no projection; "
                            "Dot = mean over the validation columns",
            "spec": {k: v for k, v in spec.items() if k not in ("tokens",)}}

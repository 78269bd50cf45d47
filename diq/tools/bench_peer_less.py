"""LESS side by side with dattri-llm's ``LESSAttributor`` (``python -m diq.tools.bench influence --against dattri``).

Both get the same warm-up checkpoints: a short AdamW warm-up of LESS's adapter (``scoring.less.lora``: r, alpha,
q/k/v/o; rank from ``--less-r``) over the same samples, made once in the parent process (not timed), each
checkpoint saving the adapter, the Adam moments and the step. Then, each in its own process:

* ours: ``diq.engine.influence.less_features`` (Adam-preconditioned train features, raw validation gradients, both
  L2-normalised) with the projection off (exact), combined by ``less_combine`` with the checkpoints' learning rates;
* dattri-llm: per checkpoint, a ``HookManager`` with factorized ``linear_io`` hooks on the LoRA A/B layers, handed
  an ``AdamW`` rebuilt with that checkpoint's state (its preconditioned capture), ``OffloadCallback`` per-sample
  around the same forward/backward batches, then ``LESSAttributor.attribute_from_cache`` (unit-normalised train and
  test rows, no projection); the per-checkpoint matrices summed with the same weights, then the mean over the
  validation items (one validation task) as in ``less_combine``.

The two preconditioners differ in one known way: LESS's code (and ours) uses m'/√(v'+ε) without bias correction;
dattri-llm uses torch's Adam update m̂/(√v̂+ε) with bias correction. The bias corrections are one scale for every
coordinate (cancelled by the cosine); the ε placement is not, so agreement is reported, not assumed — twice:
``agreement`` (ours as the pipeline runs it) and ``agreement_same_adam_convention`` (our features recomputed with
torch's convention, untimed), which isolates the engines from the convention. ``projected_vs_exact`` compares our
LESS with the pipeline's projection (``scoring.less``: sparse JL, k = 8192) against our exact LESS (same pass, untimed).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def make_checkpoints(spec: dict, out: Path) -> list[dict]:
    import torch

    from diq.engine.formatting import collate, per_sample_mean_loss
    from diq.tools.bench_peer import _setup

    tok, model, pool_enc, _ = _setup(spec)
    model.train()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(list(params.values()), lr=spec["less_lr"], weight_decay=0.0)
    dev = spec["device"]
    ckpts = []
    for c in range(spec["less_ckpts"]):
        for s in range(0, len(pool_enc), 4):
            b = {k: v.to(dev) for k, v in collate(pool_enc[s: s + 4], tok.pad_token_id).items()}
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            per_sample_mean_loss(logits, b["labels"]).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        st = {n: opt.state[p] for n, p in params.items()}
        path = out / f"ckpt-{c}.pt"
        torch.save({"lora": {n: p.detach().cpu().clone() for n, p in params.items()},
                    "adam": {n: (st[n]["exp_avg"].cpu().clone(), st[n]["exp_avg_sq"].cpu().clone(),
                                 float(st[n]["step"])) for n in params},
                    "lr": spec["less_lr"]}, path)
        ckpts.append({"path": str(path), "lr": spec["less_lr"]})
    model.eval()
    return ckpts


def checkpoints_in_child(spec: dict) -> dict:
    return {"checkpoints": make_checkpoints(spec, Path(spec["ckpt_dir"]))}


def _load(model, ck: dict) -> None:
    params = dict(model.named_parameters())
    with __import__("torch").no_grad():
        for n, v in ck["lora"].items():
            params[n].copy_(v.to(params[n]))


def run_diq_less(spec: dict) -> dict:
    import torch

    from diq.engine.influence import less_combine, less_features
    from diq.tools.bench_peer import _peak, _setup, _sync

    tok, model, pool_enc, val_enc = _setup(spec)
    dev, bt = spec["device"], spec["batch_tokens"]
    tasks = ["pubmedqa"] * len(val_enc)
    tf, vf, w = [], [], []
    _sync(dev)
    t = time.perf_counter()  # timed: exact features with LESS's convention, the one the pipeline uses
    for c in spec["checkpoints"]:
        ck = torch.load(c["path"], weights_only=True)
        _load(model, ck)
        adam = {n.removesuffix(".weight"): (m.reshape(-1), v.reshape(-1)) for n, (m, v, _) in ck["adam"].items()}
        tf.append(less_features(model, pool_enc, tok.pad_token_id, bt, None, 0, adam, desc="LESS train (diq)"))
        vf.append(less_features(model, val_enc, tok.pad_token_id, bt, None, 0, None, desc="LESS val (diq)"))
        w.append(c["lr"])
    out = np.asarray(less_combine(tf, vf, w, tasks), float)
    _sync(dev)
    seconds = time.perf_counter() - t
    peak = _peak(dev)
    del tf
    extra = _untimed_variants(spec, model, tok, pool_enc, val_enc, vf, w, tasks)
    return {"scores": out.tolist(), **extra, "seconds": seconds, **peak}


def _untimed_variants(spec, model, tok, pool_enc, val_enc, vf, w, tasks) -> dict:
    """One more gradient pass per checkpoint (not timed) for two comparisons: our exact features with torch's Adam
    convention (dattri-llm's; isolates the engines from the convention), and the pipeline's projected LESS
    (``scoring.less``: sparse JL to ``proj_dim``) against the exact LESS scores."""
    import torch
    from omegaconf import OmegaConf

    from diq.engine.gradients import GradientCapture, iter_per_sample_grads
    from diq.engine.influence import adam_features, l2_normalize, less_combine
    from diq.engine.projection import make_projector
    from diq.tools.bench_common import CONF

    lcfg = OmegaConf.load(CONF / "scoring" / "default.yaml").less
    cap = GradientCapture(model)
    proj = make_projector(str(lcfg.projection), cap.names, cap.dims, int(lcfg.proj_dim), seed=int(lcfg.proj_seed),
                          nnz=int(lcfg.proj_nnz), device=spec["device"])
    flat = lambda g: torch.cat([g[n] for n in cap.names], 1)  # noqa: E731
    tf_torch, tf_proj, vf_proj = [], [], []
    for c in spec["checkpoints"]:
        ck = torch.load(c["path"], weights_only=True)
        _load(model, ck)
        adam = {n.removesuffix(".weight"): (m.reshape(1, -1).to(spec["device"]), v.reshape(1, -1).to(spec["device"]), s)
                for n, (m, v, s) in ck["adam"].items()}
        t_torch, t_proj = torch.zeros(len(pool_enc), sum(cap.dims.values())), torch.zeros(len(pool_enc), proj.k)
        for gb in iter_per_sample_grads(model, pool_enc, tok.pad_token_id, spec["batch_tokens"], desc="LESS variants"):
            t_torch[gb.index] = l2_normalize(flat({n: adam_features(g, *adam[n][:2], step=adam[n][2])
                                                   for n, g in gb.grads.items()})).cpu()
            t_proj[gb.index] = l2_normalize(proj({n: adam_features(g, *adam[n][:2]) for n, g in gb.grads.items()})).cpu()
        v_proj = torch.zeros(len(val_enc), proj.k)
        for gb in iter_per_sample_grads(model, val_enc, tok.pad_token_id, spec["batch_tokens"], desc="LESS val proj"):
            v_proj[gb.index] = l2_normalize(proj(gb.grads)).cpu()
        tf_torch.append(t_torch)
        tf_proj.append(t_proj)
        vf_proj.append(v_proj)
    return {"scores_torch_adam": np.asarray(less_combine(tf_torch, vf, w, tasks), float).tolist(),
            # the same with fp32 inner products (dattri-llm's precision; ours accumulate in float64)
            "scores_torch_adam_fp32": np.asarray(less_combine(tf_torch, vf, w, tasks, torch.float32), float).tolist(),
            "scores_projected": np.asarray(less_combine(tf_proj, vf_proj, w, tasks), float).tolist(),
            "projection": {"kind": str(lcfg.projection), "proj_dim": int(lcfg.proj_dim), "nnz": int(lcfg.proj_nnz)}}


def run_dattri_less(spec: dict) -> dict:
    import torch
    from dattri_llm import AttributionArguments, LESSAttributor

    from diq.engine.gradients import token_budget_batches
    from diq.tools.bench_peer import _peak, _setup, _sync, dattri_collect

    tok, model, pool_enc, val_enc = _setup(spec)
    dev, bt = spec["device"], spec["batch_tokens"]
    tmp = tempfile.mkdtemp(prefix="diq-dattri-less-")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}

    def collect(encs, where: str, optimizer=None) -> None:
        dattri_collect(model, tok.pad_token_id, encs, where, dev, bt, optimizer)

    _sync(dev)
    t = time.perf_counter()
    total = None
    for i, c in enumerate(spec["checkpoints"]):
        ck = torch.load(c["path"], weights_only=True)
        _load(model, ck)
        opt = torch.optim.AdamW(list(params.values()), lr=c["lr"], weight_decay=0.0)
        for n, p in params.items():
            m, v, step = ck["adam"][n]
            opt.state[p] = {"step": torch.tensor(step), "exp_avg": m.to(p), "exp_avg_sq": v.to(p)}
        collect(pool_enc, f"{tmp}/train{i}", optimizer=opt)
        collect(val_enc, f"{tmp}/test{i}")
        score = LESSAttributor(AttributionArguments(output_dir=f"{tmp}/scores{i}", seed=0)).attribute_from_cache(
            f"{tmp}/train{i}", f"{tmp}/test{i}")
        _, mat = score.agnostic_matrix()
        mat = mat.double().cpu().numpy() if isinstance(mat, torch.Tensor) else np.asarray(mat, float)
        total = c["lr"] * mat if total is None else total + c["lr"] * mat
    _sync(dev)
    seconds = time.perf_counter() - t
    order = [i for b in token_budget_batches([len(e.input_ids) for e in pool_enc], bt) for i in b]
    scores = np.empty(len(pool_enc))
    scores[order] = total.mean(1)
    store_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return {"scores": scores.tolist(), "seconds": seconds, "store_mb": store_mb, **_peak(dev)}


def compare_dattri_less(spec: dict) -> dict:
    from omegaconf import OmegaConf
    from scipy.stats import spearmanr

    from diq.tools.bench_common import CONF, overlap
    from diq.tools.bench_peer import _spawned

    lora = OmegaConf.to_container(OmegaConf.load(CONF / "scoring" / "default.yaml").less.lora)
    lora.update(r=spec["less_r"], alpha=4 * spec["less_r"], dropout=0.0, seed=0)  # LESS: alpha = 4 r
    spec = {**spec, "lora": lora}
    with tempfile.TemporaryDirectory(prefix="diq-less-ckpt-") as td:
        # in its own process too: the warm-up's activations would otherwise stay in this process's heap (~8 GB on
        # SmolLM2 at 768 tokens) while the engines run
        spec["checkpoints"] = _spawned("checkpoints_in_child", {**spec, "ckpt_dir": td}, module=__name__)["checkpoints"]
        ours = _spawned("run_diq_less", spec, module=__name__)
        peer = _spawned("run_dattri_less", spec, module=__name__)
    a, a_t, b = np.asarray(ours.pop("scores")), np.asarray(ours.pop("scores_torch_adam")), np.asarray(peer.pop("scores"))
    a_t32 = np.asarray(ours.pop("scores_torch_adam_fp32"))
    a_p, proj = np.asarray(ours.pop("scores_projected")), ours.pop("projection")
    for r in (ours, peer):
        r["tokens_per_s"] = spec["tokens"] / r["seconds"]

    def agree(x, y):
        return {"spearman": float(spearmanr(x, y).statistic),
                "max_abs_err_over_scale": float(np.abs(x - y).max() / np.abs(x).max()), "top10_overlap": overlap(x, y, 0.10)}

    return {"ours": ours, "dattri_llm": peer, "dattri_over_ours_time": peer["seconds"] / ours["seconds"],
            "agreement": agree(a, b), "agreement_same_adam_convention": agree(a_t, b),
            # where the same-convention difference comes from: ours with fp32 inner products against dattri-llm,
            # and against ours in float64 (the rounding of fp32 inner products over d exact coordinates)
            "agreement_same_adam_convention_fp32": agree(a_t32, b), "ours_fp32_vs_fp64": agree(a_t, a_t32),
            "projected_vs_exact": {**agree(a, a_p), **proj},  # ours: the pipeline's projected LESS vs exact LESS
            "setup": {"lora": lora, "checkpoints": spec["less_ckpts"], "warmup_lr": spec["less_lr"],
                      "projection": "off (exact features) on both sides",
                      "preconditioner": "ours: m'/sqrt(v'+eps), no bias correction (LESS's code); dattri-llm: "
                                        "torch Adam update with bias correction"}}

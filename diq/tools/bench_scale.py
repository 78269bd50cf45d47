"""``python -m diq.tools.bench throughput`` — the engine and our LoRA training step at the paper's scale, as MFU.

The model is an architecture with random weights built from a ``LlamaConfig`` (``conf/model/llama31_8b_arch.yaml``:
Llama-3.1-8B-Instruct's widths, no Hub, no download). Random weights give meaningless scores: this bench measures
time, tokens/s, FLOP/s and memory only, and says so in its JSON.

FLOPs are counted per sequence of n real tokens (padding is not counted; no recompute is counted, so gradient
checkpointing lowers MFU), with P_dec the frozen decoder projections every token passes through (q, k, v, o, gate,
up, down; embeddings are a lookup), P_head the LM head, which our loss runs on the n_resp response positions only,
and P_lora = Σ r·(d_in + d_out) over the LoRA modules:

    forward                      2·(n·P_dec + n_resp·P_head + n·P_lora) + 2·h·n²·L   (causal QKᵀ and AV)
    backward, activation grads   2·(n·P_dec + n_resp·P_head + n·P_lora) + 4·h·n²·L   (frozen base: no weight grads)
    LoRA weight gradients        2·n·P_lora                          (the engine's per-sample einsum is the same)
    total                        4·n·P_dec + 4·n_resp·P_head + 6·n·P_lora + 6·h·n²·L

MFU = total FLOPs / seconds / peak, with the peak the device's dense bf16 figure (H100/H200 SXM: 989 TFLOP/s) on a
GPU, and on a CPU the measured peak of a 4096² fp32 matmul at the same thread count.
"""

from __future__ import annotations

import gc
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from diq import CONF  # noqa: E402
from diq.config.compose import group_config
from diq.engine.formatting import IGNORE, Encoded, collate, response_token_losses
from diq.errors import DiqError

PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12, "A40": 149.7e12}
NOTE = "random weights: throughput only; the scores of this model mean nothing"


def arch_cfg(model: str):
    """``--model``: a conf/model name or a .yaml path whose source is ``arch`` (random weights, throughput only)."""
    mcfg = OmegaConf.load(model) if model.endswith(".yaml") else group_config("model", model)
    if mcfg.get("source") != "arch":
        raise DiqError(f"--model {model}: source {mcfg.get('source')!r}; the throughput bench takes an "
                       f"architecture config (source: arch), e.g. --model llama31_8b_arch")
    return mcfg


def build_arch(mcfg, layers: int | None, dtype: str, device: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    kw = OmegaConf.to_container(mcfg.arch, resolve=True)
    if layers:
        kw["num_hidden_layers"] = int(layers)
    cfg = LlamaConfig(**kw)
    torch.manual_seed(int(mcfg.get("seed", 0)))
    prev = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    return model


def lora_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)


def linear_params(model) -> tuple[int, int]:
    """(P_dec, P_head): frozen decoder projection weights and the LM head's."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    dec = sum(mod.weight.numel() for name, mod in base.model.named_modules()
              if isinstance(mod, torch.nn.Linear) and "lora_" not in name)
    return dec, head.weight.numel()


def flops(seqs: list[tuple[int, int]], p_dec: int, p_head: int, p_lora: int, hidden: int, layers: int) -> float:
    """Model FLOPs of the engine pass or of one training epoch over (n tokens, n_resp response tokens) sequences."""
    return float(sum(4 * n * p_dec + 4 * nr * p_head + 6 * n * p_lora + 6 * hidden * n * n * layers for n, nr in seqs))


def synthetic(n: int, seq_len: int, vocab: int, prompt_frac: float, seed: int = 0) -> list[Encoded]:
    """Random token ids; the first ``prompt_frac`` of each sequence is prompt (no loss), the rest response."""
    rng = np.random.default_rng(seed)
    out = []
    p = int(seq_len * prompt_frac)
    for i in range(n):
        ids = rng.integers(0, vocab, seq_len).tolist()
        out.append(Encoded(f"syn{i}", ids, [IGNORE] * p + ids[p:]))
    return out


def device_peak(device: str, threads: int) -> tuple[float, str]:
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        for k, v in PEAK_BF16.items():
            if k in name:
                return v, f"{name} dense bf16 datasheet peak"
        raise DiqError(f"no bf16 peak known for {name!r}\n  fix: pass --peak-tflops")
    a = torch.randn(4096, 4096)
    b = torch.randn(4096, 4096)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 4096 ** 3 / best, f"measured fp32 4096² matmul peak, {threads} threads"


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _mem_reset(device):
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _mem_peak(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def engine_pass(model, enc, batch_tokens: int, device: str) -> float:
    from diq.engine.influence import dot_scores, mean_gradient

    target = mean_gradient(model, enc[:2], 0, batch_tokens, desc="val grads (warm-up)")
    _sync(device)
    t = time.perf_counter()
    res = dot_scores(model, enc, 0, target, batch_tokens, desc="engine")
    _sync(device)
    if not np.isfinite(res["dot"]).all():
        raise DiqError("the engine produced non-finite scores on the random-weight model")
    return time.perf_counter() - t


def epoch_pass(model, enc, batch_tokens: int, device: str, checkpointing: bool) -> float:
    """One epoch of our LoRA step (forward, response-token CE, backward, AdamW), token-budget micro-batches
    of the same size as the engine's, one optimizer step per micro-batch."""
    from diq.engine.gradients import token_budget_batches

    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batches = token_budget_batches([len(e.input_ids) for e in enc], batch_tokens)
    warm = {k: v.to(device) for k, v in collate([enc[0]], 0).items()}
    ce, _ = response_token_losses(model, warm)
    ce.sum().backward()
    opt.zero_grad(set_to_none=True)
    _sync(device)
    t = time.perf_counter()
    for idx in batches:
        b = {k: v.to(device) for k, v in collate([enc[i] for i in idx], 0).items()}
        ce, _ = response_token_losses(model, b)
        (ce.sum() / max(1, int((b["labels"] != IGNORE).sum()))).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    model.eval()
    return time.perf_counter() - t


def bench_throughput(args) -> dict:
    from diq.engine.gradients import resolve_batch_tokens
    from diq.engine.lora import attach_lora

    device, dtype = args.device, args.dtype
    mcfg = arch_cfg(args.model)
    bt = resolve_batch_tokens(args.batch_tokens, device)
    lcfg = OmegaConf.load(CONF / "train" / "lora_paper.yaml").lora
    lcfg.seed, lcfg.r, lcfg.alpha, lcfg.dropout = 0, args.r, 2 * args.r, 0.0
    threads = torch.get_num_threads()
    peak, peak_src = (args.peak_tflops * 1e12, "given") if args.peak_tflops else device_peak(device, threads)
    t0 = time.perf_counter()
    model = attach_lora(build_arch(mcfg, args.layers, dtype, device), lcfg)
    build_s = time.perf_counter() - t0
    c = model.config
    enc = synthetic(args.n, args.seq_len, c.vocab_size, args.prompt_frac)
    lengths = [len(e.input_ids) for e in enc]
    (p_dec, p_head), p_lora = linear_params(model), lora_params(model)
    f = flops([(len(e.input_ids), e.n_response) for e in enc], p_dec, p_head, p_lora, c.hidden_size,
              c.num_hidden_layers)
    out = {"note": NOTE, "model": args.model, "layers": c.num_hidden_layers,
           "layers_full": int(mcfg.arch.num_hidden_layers), "params_decoder_linear": p_dec,
           "params_lm_head": p_head, "params_lora": p_lora,
           "lora": {"r": args.r, "target_modules": list(lcfg.target_modules)}, "n": args.n, "seq_len": args.seq_len,
           "tokens": sum(lengths), "batch_tokens": bt, "device": device, "dtype": dtype, "threads": threads,
           "machine": platform.machine(), "peak_flops": peak, "peak_source": peak_src, "flops_total": f,
           "flops_formula": "4·n·P_dec + 4·n_resp·P_head + 6·n·P_lora + 6·h·n²·L per sequence (diq/tools/bench_scale.py)",
           "build_seconds": build_s, "command": "python -m diq.tools.bench " + " ".join(sys.argv[1:] if args.argv is None
                                                                              else args.argv),
           "versions": _versions()}
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name()
    print(f"[bench] {args.model} ({c.num_hidden_layers} layers), {args.n}×{args.seq_len} tokens, {dtype} on {device}; "
          f"P_dec {p_dec / 1e9:.2f} B, P_head {p_head / 1e9:.2f} B, P_lora {p_lora / 1e6:.2f} M; peak {peak / 1e12:.2f} TFLOP/s ({peak_src})",
          flush=True)
    _mem_reset(device)
    t = engine_pass(model, enc, bt, device)
    out["engine"] = _row(f, t, sum(lengths), peak, _mem_peak(device))
    print(f"[bench] engine: {t:.1f}s, {out['engine']['tokens_per_s']:.0f} tok/s, MFU {out['engine']['mfu']:.3f}",
          flush=True)
    gc.collect()
    _mem_reset(device)
    t_ep = epoch_pass(model, enc, bt, device, args.checkpointing)
    out["epoch"] = _row(f, t_ep, sum(lengths), peak, _mem_peak(device))
    out["epoch"]["gradient_checkpointing"] = bool(args.checkpointing)
    out["engine_over_epoch_time"] = t / t_ep
    print(f"[bench] LoRA epoch: {t_ep:.1f}s, MFU {out['epoch']['mfu']:.3f}; engine/epoch {t / t_ep:.2f}", flush=True)
    return out


def _row(f: float, secs: float, tokens: int, peak: float, mem_gb: float | None) -> dict:
    return {"seconds": secs, "tokens_per_s": tokens / secs, "flops_per_s": f / secs, "mfu": f / secs / peak,
            "peak_gpu_mem_gb": mem_gb}


def _versions() -> dict:
    import peft
    import transformers

    v = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
         "python": platform.python_version()}
    if torch.cuda.is_available():
        v["cuda"] = torch.version.cuda
    return v


def add_parser(sub) -> None:
    p = sub.add_parser("throughput", help="engine + LoRA epoch tokens/s and MFU on an architecture with random "
                                          "weights (conf/model/llama31_8b_arch.yaml)")
    p.add_argument("--model", default="llama31_8b_arch", help="a conf/model/<name>.yaml (or a .yaml path) with "
                   "source: arch")
    p.add_argument("--layers", type=int, default=None, help="keep every width, use this many decoder layers "
                   "(CPU: 2); default: all")
    p.add_argument("--n", type=int, default=64, help="synthetic sequences")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--prompt-frac", type=float, default=0.25, help="share of each sequence without loss (prompt)")
    p.add_argument("--r", type=int, default=8, help="LoRA rank (lora_paper's target modules)")
    p.add_argument("--batch-tokens", default="auto", help="padded tokens per engine batch and per training "
                   "micro-batch (auto: 16384 on GPU, 1 sample on CPU)")
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in the training epoch")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="bfloat16" if torch.cuda.is_available() else "float32")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak, if not known")
    p.add_argument("--out", default="throughput.json")


def run_throughput(args, argv) -> int:
    """(Arguments checked by diq.tools.bench.check_args.)"""
    args.argv = argv
    res = bench_throughput(args)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}  ({NOTE})")
    return 0

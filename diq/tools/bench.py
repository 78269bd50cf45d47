"""``python -m diq.tools.bench influence`` — the influence engine against a LESS-style loop and a training epoch.

Measures, in one process, with the same model, pool slice, max length and LoRA config:
  (a) the exact engine (hooked per-sample gradients over length-sorted token-budget batches, exact Dot);
  (b) a LESS-style reference: a batch-size-1 loop, the flattened LoRA gradient, a random projection;
  (c) one epoch of diq's own fine-tuning step (forward, backward, optimizer step, its real batching);
checks (a) against the exact dot of (b)'s unprojected gradients, and compares fast modes with the exact scores
(Spearman, top-1 % / top-10 % overlap), next to the seed-to-seed agreement of exact scores (the noise floor).
Also times quadrant selection over 1,000,000 synthetic scored samples.
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
from scipy.stats import spearmanr

from diq.args import parser
from diq.config.compose import group_config
from diq.engine.formatting import encode
from diq.engine.models import load_model, load_tokenizer, resolve_model
from diq.stages.pool.load import load_pool
from diq.tasks.validation import build_validation
from diq.tools.bench_common import (  # noqa: F401 - CONF, _model and overlap are also used by the peer benches
    CONF,
    _lora,
    _model,
    _sync,
    _timed_scores,
    compare,
    loop_reference,
    norm_scale,
    overlap,
    peak_rss_mb,
    selection_at_scale,
    train_epoch_time,
)

ALL_MODES = ["seed_vs_seed", "resp256", "resp128", "half_depth", "last8", "proj2048", "bf16"]
DEFAULT_MODES = ALL_MODES[:5]
ROOT = CONF.parent  # the source checkout: docs/ and benchmarks/ beside conf/


def bench_influence(args) -> dict:
    from diq.engine.gradients import resolve_batch_tokens

    torch.manual_seed(0)
    args.batch_tokens = resolve_batch_tokens(args.batch_tokens, args.device)
    mcfg = group_config("model", args.model)
    path = resolve_model(mcfg)
    tok = load_tokenizer(path)
    records = load_pool(group_config("pool", args.pool))[: args.n]
    val, _ = build_validation(OmegaConf.create({"per_task": args.val_per_task,
                                                "sources": [{"name": "pubmedqa", "kind": "pubmedqa_pqal_train"}]}), 0)
    pool_enc = [encode(tok, r, args.max_len) for r in records]
    val_enc = [encode(tok, r, args.max_len) for r in val]
    tokens = sum(len(e.input_ids) for e in pool_enc)
    out = {"model": args.model, "n": len(records), "tokens": tokens, "max_len": args.max_len, "device": args.device,
           "machine": f"{platform.machine()} {torch.get_num_threads()} threads", "batch_tokens": args.batch_tokens,
           "val_items": len(val), "dtype": args.dtype}
    print(f"[bench] {len(records)} samples, {tokens} tokens, max_len {args.max_len}, device {args.device}", flush=True)

    model = _model(path, seed=0, dtype=args.dtype, device=args.device)
    exact, t_exact, target = _timed_scores(model, tok, pool_enc, val_enc, args.batch_tokens)
    out["engine_peak_rss_mb"] = peak_rss_mb()
    out.update(engine_seconds=t_exact, engine_samples_per_s=len(records) / t_exact, engine_tokens_per_s=tokens / t_exact)
    scale = norm_scale(exact["grad_norm"], target)
    out["cancellation"] = float(np.abs(exact["dot"]).max() / scale)  # max |Dot| / (max ‖g‖ · ‖ḡ‖)
    print(f"[bench] exact engine: {t_exact:.1f}s ({tokens / t_exact:.0f} tok/s)", flush=True)

    if not args.skip_loop:
        loop_dots, t_loop = loop_reference(model, tok, pool_enc, target, args.proj_dim)
        err = np.abs(exact["dot"] - loop_dots) / np.maximum(np.abs(loop_dots), 1e-12)
        out.update(loop_seconds=t_loop, loop_samples_per_s=len(records) / t_loop, speedup_vs_loop=t_loop / t_exact,
                   max_rel_err=float(err.max()), loop_proj_dim=args.proj_dim,
                   max_abs_err_over_scale=float(np.abs(exact["dot"] - loop_dots).max() / np.abs(loop_dots).max()),
                   loop_spearman=float(spearmanr(exact["dot"], loop_dots).statistic),
                   max_abs_err_over_norms=float(np.abs(exact["dot"] - loop_dots).max() / scale))
        print(f"[bench] bs-1 loop: {t_loop:.1f}s → speedup {t_loop / t_exact:.2f}×, max rel err {err.max():.2e}", flush=True)
    del model
    gc.collect()

    if not args.skip_epoch:
        t_epoch = train_epoch_time(path, tok, records, args.max_len, args.dtype, args.device)
        out.update(epoch_seconds=t_epoch, epoch_samples_per_s=len(records) / t_epoch,
                   engine_over_epoch_time=t_exact / t_epoch)
        print(f"[bench] training epoch: {t_epoch:.1f}s → engine/epoch {t_exact / t_epoch:.2f}", flush=True)
    gc.collect()

    modes = []
    for mode in args.modes:
        t0 = time.perf_counter()
        if mode == "seed_vs_seed":
            m = _model(path, seed=1, dtype=args.dtype, device=args.device)
            res, t, _ = _timed_scores(m, tok, pool_enc, val_enc, args.batch_tokens)
        elif mode.startswith("resp"):
            n_resp = int(mode[4:])
            pe = [encode(tok, r, args.max_len, max_response_tokens=n_resp) for r in records]
            ve = [encode(tok, r, args.max_len, max_response_tokens=n_resp) for r in val]
            m = _model(path, seed=0, dtype=args.dtype, device=args.device)
            res, t, _ = _timed_scores(m, tok, pe, ve, args.batch_tokens)
        elif mode == "bf16":  # lower precision: bf16 weights and activations, fp32 per-sample einsum, fp64 dot
            m = _model(path, seed=0, dtype="bfloat16", device=args.device)
            res, t, _ = _timed_scores(m, tok, pool_enc, val_enc, args.batch_tokens)
        elif mode.startswith("proj"):
            m = _model(path, seed=0, dtype=args.dtype, device=args.device)
            res, t, _ = _timed_scores(m, tok, pool_enc, val_enc, args.batch_tokens, proj_dim=int(mode[4:]))
        elif mode == "half_depth":
            n_layers = load_model(path).config.num_hidden_layers
            m = _model(path, seed=0, dtype=args.dtype, device=args.device, keep_layers=list(range(0, n_layers, 2)))
            res, t, _ = _timed_scores(m, tok, pool_enc, val_enc, args.batch_tokens)
        elif mode.startswith("last"):
            k = int(mode[4:])
            n_layers = load_model(path).config.num_hidden_layers
            m = _model(path, seed=0, dtype=args.dtype, device=args.device, lora_layers=list(range(n_layers - k, n_layers)))
            res, t, _ = _timed_scores(m, tok, pool_enc, val_enc, args.batch_tokens)
        else:
            raise SystemExit(f"unknown mode {mode!r}; choose from {ALL_MODES}")
        entry = compare(mode, exact["dot"], res["dot"], t / t_exact)
        entry["seconds"] = t
        modes.append(entry)
        print(f"[bench] mode {mode}: cost {entry['cost_over_exact']:.2f}, spearman {entry['spearman']:.3f}, "
              f"top10 {entry['top10_overlap']:.2f} ({time.perf_counter() - t0:.0f}s)", flush=True)
        del m
        gc.collect()
    out["modes"] = modes
    if not args.skip_selection:
        out["selection_1m"] = selection_at_scale()
        print(f"[bench] quadrant selection over 1M: {out['selection_1m']['seconds']:.2f}s", flush=True)
    out["peak_rss_mb"] = peak_rss_mb()
    if str(args.device).startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    out["torch"] = torch.__version__
    out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    return out


def _against(args) -> int:
    from diq.engine.gradients import resolve_batch_tokens
    from diq.tools.bench_peer import compare_dattri

    try:
        import dattri_llm  # noqa: F401
    except ImportError:
        raise SystemExit("error: --against dattri needs dattri-llm\n  fix: pip install -e '.[bench]'") from None
    mcfg = group_config("model", args.model)
    tok = load_tokenizer(resolve_model(mcfg))
    records = load_pool(group_config("pool", args.pool))[: args.n]
    tokens = sum(len(encode(tok, r, args.max_len).input_ids) for r in records)
    spec = {"model": args.model, "pool": args.pool, "n": args.n, "n_actual": len(records), "max_len": args.max_len,
            "val_per_task": args.val_per_task, "dtype": args.dtype, "device": args.device,
            "batch_tokens": resolve_batch_tokens(args.batch_tokens, args.device), "threads": torch.get_num_threads(),
            "tokens": tokens}
    print(f"[bench] diq vs dattri-llm: {len(records)} samples, {tokens} tokens, {args.dtype} on {args.device}, "
          f"{spec['threads']} threads, batch_tokens {spec['batch_tokens']}", flush=True)
    res = compare_dattri(spec) if "dot" in args.peer_methods else {}
    if "less" in args.peer_methods:
        from diq.tools.bench_peer_less import compare_dattri_less

        spec.update(less_r=args.less_r, less_ckpts=args.less_ckpts, less_lr=args.less_lr)
        res["less"] = compare_dattri_less(spec)
    from importlib import metadata

    res.update(machine=f"{platform.machine()} {platform.processor()}", torch=torch.__version__,
               dattri_llm_version=metadata.version("dattri-llm"), tokens=tokens,
               command="python -m diq.tools.bench influence " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                                                                  (("model", args.model), ("n", args.n),
                                                                   ("max_len", args.max_len), ("dtype", args.dtype),
                                                                  ("device", args.device))) +
               " --against dattri --peer-methods " + " ".join(args.peer_methods) +
               (f" --less-r {args.less_r} --less-ckpts {args.less_ckpts}" if "less" in args.peer_methods else ""))
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    for label, r in (("Dot (TracIn)", res), ("LESS", res.get("less"))):
        if not r or "ours" not in r:
            continue
        o, p_, a = r["ours"], r["dattri_llm"], r["agreement"]
        print(f"  {label}: diq {o['seconds']:.1f} s ({o['tokens_per_s']:.0f} tok/s, peak RSS {o['peak_rss_mb']:.0f} MB)"
              f" vs dattri-llm {p_['seconds']:.1f} s ({p_['tokens_per_s']:.0f} tok/s, {p_['peak_rss_mb']:.0f} MB); "
              f"Spearman {a['spearman']:.6f}, max |Δ|/scale {a['max_abs_err_over_scale']:.2e}, "
              f"top-10 % overlap {a['top10_overlap']:.2f}")
        if "agreement_same_adam_convention" in r:
            a = r["agreement_same_adam_convention"]
            print(f"  LESS, same Adam convention as dattri-llm: Spearman {a['spearman']:.6f}, max |Δ|/scale "
                  f"{a['max_abs_err_over_scale']:.2e}")
    print(f"wrote {args.out}")
    return 0


POSITIVE = {"n": 1, "max_len": 1, "val_per_task": 1, "proj_dim": 1, "less_r": 1, "less_ckpts": 1, "layers": 1,
            "seq_len": 8, "r": 1, "k": 1, "batch": 1, "dense_modules": 1}


def check_args(args) -> None:
    """Every argument, before a model is loaded or a second is spent: a named error with the fix (exit 2)."""
    import os

    from diq.args import check_minimums
    from diq.config.checks import DTYPES, check_device
    from diq.errors import DiqError

    check_minimums(args, POSITIVE)
    for name in ("less_lr", "peak_tflops"):
        v = getattr(args, name, None)
        if v is not None and not v > 0:
            raise DiqError(f"--{name.replace('_', '-')}={v}: must be > 0")
    pf = getattr(args, "prompt_frac", None)
    if pf is not None and not 0 <= pf < 1:
        raise DiqError(f"--prompt-frac={pf}: must be in [0, 1)")
    flag = "--models" if hasattr(args, "models") else "--model"
    for m in getattr(args, "models", None) or [getattr(args, "model", None)]:
        if not (CONF / "model" / f"{m}.yaml").exists() and not (args.what == "throughput" and str(m).endswith(".yaml")
                                                                 and Path(m).exists()):
            have = sorted(q.stem for q in (CONF / "model").glob("*.yaml"))
            raise DiqError(f"{flag} {m}: no conf/model/{m}.yaml\n  fix: one of {', '.join(have)}")
    if args.what == "throughput":
        from diq.tools.bench_scale import arch_cfg

        arch_cfg(args.model)  # source: arch, or a named error
    pool = getattr(args, "pool", None)
    if pool is not None and not (CONF / "pool" / f"{pool}.yaml").exists():
        have = sorted(q.stem for q in (CONF / "pool").glob("*.yaml"))
        raise DiqError(f"--pool {pool}: no conf/pool/{pool}.yaml\n  fix: one of {', '.join(have)}")
    bad = [m for m in getattr(args, "modes", None) or [] if m not in ALL_MODES]
    if bad:
        raise DiqError(f"--modes {' '.join(bad)}: unknown\n  fix: any of {', '.join(ALL_MODES)}")
    bt = getattr(args, "batch_tokens", "auto")
    if bt != "auto" and not (str(bt).isdigit() and int(bt) >= 1):
        raise DiqError(f"--batch-tokens={bt}: use auto or a positive number of padded tokens, e.g. 16384")
    if getattr(args, "dtype", None) is not None and args.dtype not in DTYPES:
        raise DiqError(f"--dtype={args.dtype}: choose one of {', '.join(DTYPES)}")
    if getattr(args, "device", None) is not None:
        check_device(args.device, "--device")
    parent = Path(args.out).resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise DiqError(f"--out {args.out}: {parent} is not a writable folder (checked before the bench runs, so no "
                       f"measurement is lost)\n  fix: mkdir -p {parent}, or choose another --out")


def main(argv=None) -> int:
    from diq.errors import DiqError

    try:
        return _main(argv)
    except DiqError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code


def _main(argv=None) -> int:
    from diq.logs import cli_logging

    cli_logging()
    ap = parser("bench", __doc__)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("influence")
    p.add_argument("--model", default="smollm2_135m", help="a conf/model/<name>.yaml")
    p.add_argument("--pool", default="medical_o1_demo", help="a conf/pool/<name>.yaml")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--max-len", type=int, default=768)
    p.add_argument("--val-per-task", type=int, default=20)
    p.add_argument("--batch-tokens", default="auto", help="padded-token budget of an engine batch (auto: 1 sample per "
                   "batch on CPU, 16384 on GPU)")
    p.add_argument("--proj-dim", type=int, default=2048, help="projection dim of the LESS-style loop")
    p.add_argument("--modes", nargs="*", default=DEFAULT_MODES, help=f"fast modes to compare ({', '.join(ALL_MODES)})")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", help="dtype of the exact engine, the loop and the epoch")
    p.add_argument("--skip-loop", action="store_true")
    p.add_argument("--skip-epoch", action="store_true")
    p.add_argument("--skip-selection", action="store_true")
    p.add_argument("--against", choices=["dattri"], help="only the side-by-side with a peer library (dattri-llm: "
                   "pip install -e '.[bench]'); each engine in its own process (diq/tools/bench_peer.py)")
    p.add_argument("--peer-methods", nargs="+", default=["dot", "less"], choices=["dot", "less"],
                   help="with --against: Dot (TracInAttributor) and/or LESS (LESSAttributor)")
    p.add_argument("--less-r", type=int, default=128, help="LESS adapter rank for the side by side (LESS: 128)")
    p.add_argument("--less-ckpts", type=int, default=2, help="warm-up checkpoints shared by both LESS engines")
    p.add_argument("--less-lr", type=float, default=2e-5, help="warm-up AdamW lr (LESS: 2e-5)")
    p.add_argument("--out", default="bench.json")
    from diq.tools.bench_projection import add_projection_parser, bench_projection
    from diq.tools.bench_scale import add_parser, run_throughput

    add_parser(sub)
    add_projection_parser(sub)
    d = sub.add_parser("docs", help="render docs/performance.md's tables from benchmarks/*.json (--check: compare only)")
    d.add_argument("--page", default=str(ROOT / "docs" / "performance.md"))
    d.add_argument("--bench", default=str(ROOT / "benchmarks"))
    d.add_argument("--check", action="store_true", help="fail (exit 2) when the page's tables differ from the JSON")
    args = ap.parse_args(argv)
    if args.what == "docs":
        from diq.tools.bench_docs import apply

        same = apply(Path(args.page), Path(args.bench), check=args.check)
        print(f"{args.page}: {'its tables match' if same else 'tables rendered from'} {args.bench}/*.json")
        return 0
    check_args(args)
    command = "diq bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.what == "throughput":
        return run_throughput(args, argv)
    if args.what == "projection":
        res = bench_projection(args.models, args.k, args.batch, args.dense_modules)
        res["command"] = command
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0
    if args.against:
        return _against(args)
    res = bench_influence(args)
    res["command"] = command
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    keys = ["engine_samples_per_s", "engine_tokens_per_s", "speedup_vs_loop", "engine_over_epoch_time", "max_rel_err",
            "peak_rss_mb"]
    print("\n".join(f"  {k:<24} {res.get(k)}" for k in keys))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

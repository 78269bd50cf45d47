"""The paper-scale throughput bench (python -m diq.tools.bench throughput): its FLOP formula against PyTorch's own FLOP
counter, a CPU run on a small architecture with random weights, and the refusal to run the pipeline on one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from diq.engine.formatting import collate, response_token_losses
from diq.engine.lora import attach_lora
from diq.errors import DiqError
from diq.tools.bench_scale import build_arch, flops, linear_params, lora_params, synthetic

ARCH = {"name": "small_arch", "source": "arch", "seed": 0,
        "arch": {"hidden_size": 64, "intermediate_size": 224, "num_hidden_layers": 4, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False}}
LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj"], "seed": 0}


def test_flop_formula_equals_pytorch_flop_counter():
    """Eager attention computes the full n² scores, and autograd skips the input gradient of the first layer's
    q/k/v (its input needs none); apart from those two known terms the formula is PyTorch's count, exactly."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_arch(OmegaConf.create(ARCH), None, "float32", "cpu")
    model.config._attn_implementation = "eager"
    model = attach_lora(model, OmegaConf.create(LORA))
    enc = synthetic(2, 128, 1000, 0.25)
    with FlopCounterMode(display=False) as fc:
        ce, _ = response_token_losses(model, collate(enc, 0))
        ce.sum().backward()
    (p_dec, p_head), p_lora = linear_params(model), lora_params(model)
    h, kv, L, r = 64, 32, 4, 8
    assert (p_dec, p_head, p_lora) == (L * (2 * h * h + 2 * h * kv + 3 * h * 224), h * 1000,
                                       L * r * ((h + h) + 2 * (h + kv)))
    seqs = [(len(e.input_ids), e.n_response) for e in enc]
    mine = flops(seqs, p_dec, p_head, p_lora, h, L)
    n = sum(s for s, _ in seqs)
    non_causal = sum(6 * h * s * s * L for s, _ in seqs)         # eager computes the masked half too
    layer0_input_grads = 2 * n * (h * (h + 2 * kv) + 3 * r * h)  # q/k/v base and lora_A input grads of layer 0
    assert fc.get_total_flops() == mine + non_causal - layer0_input_grads


def test_throughput_bench_on_cpu(tmp_path, capsys):
    from diq.tools.bench import main

    arch = tmp_path / "small_arch.yaml"
    OmegaConf.save(OmegaConf.create(ARCH), arch)
    out = tmp_path / "t.json"
    assert main(["throughput", "--model", str(arch), "--layers", "2", "--n", "4", "--seq-len", "64",
                 "--device", "cpu", "--dtype", "float32", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["note"].startswith("random weights") and res["layers"] == 2 and res["layers_full"] == 4
    assert res["tokens"] == 256 and res["peak_source"].startswith("measured fp32")
    for part in ("engine", "epoch"):
        row = res[part]
        assert 0 < row["mfu"] < 1 and row["flops_per_s"] == pytest.approx(res["flops_total"] / row["seconds"])
    assert res["engine_over_epoch_time"] == pytest.approx(res["engine"]["seconds"] / res["epoch"]["seconds"])
    stamp = out.stat().st_mtime_ns
    capsys.readouterr()
    for bad, msg in ((["--prompt-frac", "1.5"], "--prompt-frac=1.5: must be in [0, 1)"),
                     (["--layers", "0"], "--layers=0 is out of range"),
                     (["--out", str(tmp_path / "no" / "such" / "t.json")], "is not a writable folder"),
                     (["--model", "tiny"], "the throughput bench takes an architecture config")):
        assert main(["throughput", "--model", str(arch), "--out", str(out), *bad]) == 2
        assert msg in capsys.readouterr().err
    assert out.stat().st_mtime_ns == stamp  # refused before anything ran or was written


def test_architecture_model_is_refused_by_the_pipeline_and_matches_llama31_8b():
    from diq.engine.models import resolve_model

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/model/llama31_8b_arch.yaml")
    with pytest.raises(DiqError, match="throughput only"):
        resolve_model(cfg)
    # the widths of Llama-3.1-8B: 8.03 B parameters (built on the meta device: no memory, no weights)
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        m = LlamaForCausalLM(LlamaConfig(**OmegaConf.to_container(cfg.arch)))
    assert round(sum(p.numel() for p in m.parameters()) / 1e9, 2) == 8.03


def test_projection_bench_reports_sparse_and_dense(tmp_path, tiny_path):
    from diq.tools.bench import main

    out = tmp_path / "p.json"
    assert main(["projection", "--models", "tiny", "--k", "1024", "--dense-modules", "2", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["d"] == 114688 and row["lora_modules"] == 16 and row["rademacher_extrapolated"]
    assert row["sjlt_seconds_per_batch"] > 0 and row["speedup"] == pytest.approx(
        row["rademacher_seconds_per_batch"] / row["sjlt_seconds_per_batch"])


def test_engine_vs_loop_bench_on_cpu(tmp_path, tiny_path):
    """python -m diq.tools.bench influence (no peer): the exact engine against the batch-size-1 autograd loop, fp32. The
    agreement keys behind the README's figures: scale-relative error, Spearman, the error over max‖g‖·‖ḡ‖."""
    import numpy as np

    from diq.tools.bench import main

    out = tmp_path / "bench.json"
    assert main(["influence", "--model", "tiny", "--n", "10", "--max-len", "160", "--val-per-task", "4",
                 "--proj-dim", "64", "--modes", "--skip-epoch", "--skip-selection", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 10 and res["engine_seconds"] > 0 and res["loop_seconds"] > 0
    assert res["max_abs_err_over_scale"] < 1e-5 and res["loop_spearman"] > 0.9999
    assert 0 < res["cancellation"] <= 1.0
    assert np.isclose(res["max_abs_err_over_norms"], res["max_abs_err_over_scale"] * res["cancellation"], rtol=1e-4)

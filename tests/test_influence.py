"""The influence engine against an independent batch-size-1 autograd loop, on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from diq.engine.formatting import collate, encode, per_sample_mean_loss
from diq.engine.gradients import GradientCapture, iter_per_sample_grads, token_budget_batches
from diq.engine.influence import dot_scores, mean_gradient
from diq.engine.lora import attach_lora
from diq.engine.models import load_model, load_tokenizer

LORA = OmegaConf.create({"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj"],
                         "seed": 0})


def _records(n, rng):
    words = "patient fever cough chest pain diagnosis treatment dose renal hepatic acute chronic".split()
    out = []
    for i in range(n):
        q = " ".join(rng.choice(words, size=int(rng.integers(3, 30))))
        r = " ".join(rng.choice(words, size=int(rng.integers(0, 120))))
        a = " ".join(rng.choice(words, size=int(rng.integers(1, 40))))
        out.append({"id": f"s{i:03d}", "question": q, "reasoning": r, "response": a})
    return out


@pytest.fixture(scope="module")
def setup(tiny_path):
    tok = load_tokenizer(tiny_path)
    model = attach_lora(load_model(tiny_path), LORA)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a non-zero B, so that the A factors get gradient too (fresh LoRA has B = 0)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    model.eval()
    recs = _records(24, np.random.default_rng(0))
    enc = [encode(tok, r, 512) for r in recs]
    return tok, model, recs, enc


def loop_grads(model, tok, enc):
    """The reference: one sample at a time, plain autograd, flattened LoRA gradient (LESS-style)."""
    names = [n for n, _ in GradientCapture(model).modules]
    params = dict(model.named_parameters())
    out = []
    for e in enc:
        b = collate([e], tok.pad_token_id)
        model.zero_grad()
        loss = per_sample_mean_loss(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                    b["labels"])[0]
        loss.backward()
        out.append(torch.cat([params[n + ".weight"].grad.reshape(-1).double() for n in names]))
    model.zero_grad()
    return torch.stack(out)


def test_hooked_grads_equal_bs1_loop_with_padding(setup):
    tok, model, recs, enc = setup
    lengths = [len(e.input_ids) for e in enc]
    assert max(lengths) > 4 * min(lengths), "the batch must mix very different lengths"
    ref = loop_grads(model, tok, enc)
    names = [n for n, _ in GradientCapture(model).modules]
    got = torch.zeros_like(ref)
    n_batches = 0
    # one big padded batch: every sequence padded to the longest
    for gb in iter_per_sample_grads(model, enc, tok.pad_token_id, batch_tokens=10**9, progress=False):
        got[gb.index] = torch.cat([gb.grads[n].double() for n in names], 1)
        n_batches += 1
    assert n_batches == 1
    rel = (got - ref).norm(dim=1) / ref.norm(dim=1)
    assert float(rel.max()) < 1e-5, float(rel.max())
    dims = GradientCapture(model).dims
    is_a = torch.cat([torch.full((d,), "lora_A" in n) for n, d in sorted(dims.items())])
    assert float(ref[:, is_a].abs().sum()) > 0 and float(ref[:, ~is_a].abs().sum()) > 0  # both factors tested


def test_dot_equals_explicit_dot_of_flattened_grads(setup):
    tok, model, recs, enc = setup
    ref = loop_grads(model, tok, enc)
    val, pool = enc[:6], enc[6:]
    target = mean_gradient(model, val, tok.pad_token_id, batch_tokens=700)
    res = dot_scores(model, pool, tok.pad_token_id, target, batch_tokens=700)
    gbar = ref[:6].mean(0)
    expected = (ref[6:] @ gbar).numpy()
    np.testing.assert_allclose(res["dot"], expected, rtol=1e-6, atol=1e-12)
    cos = dot_scores(model, pool, tok.pad_token_id, target, batch_tokens=700, normalize="cosine")["score"]
    exp_cos = expected / (ref[6:].norm(dim=1).numpy() * float(gbar.norm()))
    np.testing.assert_allclose(cos, exp_cos, rtol=1e-6)
    # the loss by-product equals the base per-sample loss
    b = collate(pool[:1], tok.pad_token_id)
    with torch.no_grad():
        l0 = per_sample_mean_loss(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"])
    assert abs(res["loss"][0] - float(l0[0])) < 1e-5


@pytest.mark.parametrize("kind,nnz", [("rademacher", 1), ("sjlt", 1), ("sjlt", 4)])
def test_projection_4096_keeps_ranking(setup, kind, nnz):
    tok, model, recs, enc = setup
    target = mean_gradient(model, enc[:6], tok.pad_token_id, batch_tokens=2048)
    exact = dot_scores(model, enc[6:], tok.pad_token_id, target, batch_tokens=2048)["dot"]
    kw = dict(proj_dim=4096, proj_seed=3, projection=kind, proj_nnz=nnz)
    proj = dot_scores(model, enc[6:], tok.pad_token_id, target, batch_tokens=2048, **kw)["dot"]
    rho = spearmanr(exact, proj).statistic
    assert rho >= 0.95, rho
    again = dot_scores(model, enc[6:], tok.pad_token_id, target, batch_tokens=300, **kw)["dot"]
    np.testing.assert_allclose(proj, again, rtol=1e-5, atol=1e-9)  # independent of batching


def test_token_budget_batches_sorted_and_bounded():
    lengths = [5, 100, 7, 90, 50, 3, 100]
    batches = token_budget_batches(lengths, batch_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= 200 or len(b) == 1
    assert batches[0] == [1, 6]  # longest first, ties by index


def test_sharded_scoring_is_bitwise_identical(run_cfg):
    import numpy as np

    from diq.run import run

    base = ["selection=influence", "stop_after=score", "scoring.influence.max_length=256"]
    full = run(run_cfg(*base, out="unsharded"))
    for i in range(3):
        run(run_cfg(*base, "scoring.influence.shards=3", f"scoring.influence.shard_index={i}",
                    "cache_dir=${oc.env:DIQ_CACHE_DIR}/sharded", out=f"shard{i}"))
    from diq.stages.score import cache as scores

    scores.SCORER_CALLS.clear()
    merged = run(run_cfg(*base, "scoring.influence.shards=3", "cache_dir=${oc.env:DIQ_CACHE_DIR}/sharded",
                         out="merged"))
    assert merged["scores"]["influence"]["shards"] == 3
    assert dict(scores.SCORER_CALLS) == {"influence": 1}  # the merge only: no shard was recomputed
    a = np.load(f"{full['scores']['influence']['cache']}/dot.npy")
    b = np.load(f"{merged['scores']['influence']['cache']}/dot.npy")
    assert a.tobytes() == b.tobytes()  # bitwise
    assert np.isfinite(b).all()


def test_capture_computes_no_weight_gradients_and_restores_the_factors(setup):
    """During capture the LoRA factors are frozen (the graph starts at the input embeddings), so autograd never
    forms their batch-summed weight gradients; afterwards they are trainable again, even after an early stop."""
    tok, model, _, enc = setup
    names = [n for n, _ in GradientCapture(model).modules]
    params = dict(model.named_parameters())
    gen = iter_per_sample_grads(model, enc[:6], tok.pad_token_id, batch_tokens=1024, progress=False)
    gb = next(gen)
    frozen = [n for n in names if not params[n + ".weight"].requires_grad]
    with_grad = [n for n in names if params[n + ".weight"].grad is not None]
    total = float(sum(g.abs().sum() for g in gb.grads.values()))
    gen.close()  # an early stop must restore the factors too
    assert frozen == names and with_grad == [] and total > 0
    assert all(params[n + ".weight"].requires_grad for n in names)
    # and the next full pass still matches the autograd loop (the other tests check every score)
    ref = loop_grads(model, tok, enc[:3])
    got = {}
    for gb in iter_per_sample_grads(model, enc[:3], tok.pad_token_id, batch_tokens=4096, progress=False):
        for j, i in enumerate(gb.index):
            got[i] = torch.cat([gb.grads[n][j].double() for n in names])
    err = max(float((got[i] - ref[i]).abs().max()) for i in range(3)) / float(ref.abs().max())
    assert err < 1e-5

"""LESS mode on a hand-computed tiny case."""

from __future__ import annotations

import math

import numpy as np
import torch

from diq.engine.influence import adam_features, l2_normalize, less_combine


def test_adam_features_by_hand():
    g = torch.tensor([[1.0, -2.0]])
    m = torch.tensor([[0.5, 0.0]])
    v = torch.tensor([[0.25, 1.0]])
    f = adam_features(g, m, v)
    m2 = [0.9 * 0.5 + 0.1 * 1.0, 0.9 * 0 + 0.1 * -2.0]            # 0.55, -0.2
    v2 = [0.999 * 0.25 + 0.001 * 1.0, 0.999 * 1.0 + 0.001 * 4.0]  # 0.25075, 1.003
    exp = [m2[0] / math.sqrt(v2[0] + 1e-8), m2[1] / math.sqrt(v2[1] + 1e-8)]
    np.testing.assert_allclose(f[0].numpy(), exp, rtol=1e-6)


def test_l2_normalize_is_exact_at_lora_scale():
    # exact LESS features of SmolLM2 (r = 128 on q/k/v/o) have 14.7 M coordinates; torch's fp32 CPU norm is 5e-4
    # short there, which shifted every exact LESS score by ~1e-3 against dattri-llm (benchmarks/peer_dattri_*)
    x = torch.randn(2, 14_745_600, generator=torch.Generator().manual_seed(0)) * 3.0
    y = l2_normalize(x)
    assert y.dtype == torch.float32
    norms = y.double().norm(dim=1)  # float64 reference
    np.testing.assert_allclose(norms.numpy(), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose((y[:, :4].double() * x.double().norm(dim=1, keepdim=True)).numpy(),
                               x[:, :4].double().numpy(), rtol=1e-6)


def test_less_combine_by_hand():
    # 2 train samples, 3 validation items (tasks a, a, b), 2 checkpoints with lr weights 2 and 1
    t1 = l2_normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    t2 = l2_normalize(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
    v1 = l2_normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    v2 = l2_normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    s = less_combine([t1, t2], [v1, v2], [2.0, 1.0], ["a", "a", "b"])
    r = 1 / math.sqrt(2)
    # sample 0: ckpt1 cos = [1, 0, r], ckpt2 cos = [r, r, r] → 2·[1,0,r] + [r,r,r] = [2+r, r, 3r]
    #   task a = mean(2+r, r) = 1 + r ≈ 1.707, task b = 3r ≈ 2.121 → max = 3r
    # sample 1: ckpt1 = [0, 1, r], ckpt2 = [r, r, -r] → [r, 2+r, r] → a = 1 + r, b = r → 1 + r
    np.testing.assert_allclose(s, [3 * r, 1 + r], rtol=1e-6)
    s2 = less_combine([t1, t2], [v1, v2], [1.0, 0.0], ["a", "b", "b"])
    # ckpt1 only: sample 0 → a = 1, b = mean(0, r) ; sample 1 → a = 0, b = mean(1, r)
    np.testing.assert_allclose(s2, [1.0, (1 + r) / 2], rtol=1e-6)


def test_sparse_jl_preserves_inner_products_at_o_d_cost():
    """The sparse JL (count-sketch blocks) used by LESS: unbiased inner products with JL-sized error, tables of
    O(d) entries, the same result whatever the batch split, and a named error for a bad nnz."""
    import pytest

    from diq.engine.projection import RademacherProjector, SparseJLProjector
    from diq.errors import DiqError

    gen = torch.Generator().manual_seed(0)
    dims = {"a": 20000, "b": 12000}
    g = {n: torch.randn(16, d, generator=gen) for n, d in dims.items()}
    exact = sum(g[n].double() @ g[n].double().T for n in dims)
    scale = exact.diag().max()
    for nnz in (1, 4):
        p = SparseJLProjector(list(dims), dims, 4096, seed=1, nnz=nnz)
        f = p(g).double()
        err = float((f @ f.T - exact).abs().max() / scale)
        assert err < 0.12, (nnz, err)
        assert p.tables(0)[0].shape == (nnz, dims["a"])  # O(d) tables, never d × k
        half = torch.cat([p({n: v[:7] for n, v in g.items()}), p({n: v[7:] for n, v in g.items()})])
        torch.testing.assert_close(half, f.float())
    # the error of the dense projection is of the same order (both O(1/√k))
    f = RademacherProjector(list(dims), dims, 4096, seed=1)(g).double()
    assert float((f @ f.T - exact).abs().max() / scale) < 0.12
    # a zero vector stays zero, a single coordinate lands in nnz buckets of size 1/√nnz
    one = {"a": torch.zeros(1, dims["a"]), "b": torch.zeros(1, dims["b"])}
    one["a"][0, 5] = 1.0
    out = SparseJLProjector(list(dims), dims, 4096, seed=1, nnz=4)(one)[0]
    assert int((out != 0).sum()) == 4 and torch.allclose(out.abs()[out != 0], torch.full((4,), 0.5))
    with pytest.raises(DiqError, match="divide"):
        SparseJLProjector(list(dims), dims, 4096, nnz=3)


def test_adam_features_torch_convention_is_torch_adams_own_update():
    """With ``step``, the feature is exactly the direction torch's Adam moves a parameter (lr = 1, one sample);
    without it, LESS's m'/√(v'+ε), which differs from it by more than a global scale."""
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(50, generator=gen))
    m, v = torch.randn(50, generator=gen) * 1e-3, torch.rand(50, generator=gen) * 1e-6
    g = torch.randn(50, generator=gen) * 1e-3
    opt = torch.optim.Adam([p], lr=1.0, eps=1e-8)
    opt.state[p] = {"step": torch.tensor(7.0), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
    before = p.detach().clone()
    p.grad = g.clone()
    opt.step()
    torch.testing.assert_close(adam_features(g, m, v, step=7.0), before - p.detach(), rtol=1e-5, atol=1e-7)
    less = adam_features(g, m, v)
    ratio = less / adam_features(g, m, v, step=7.0)
    assert float(ratio.std() / ratio.mean().abs()) > 1e-3  # ε inside the root: not a pure rescaling

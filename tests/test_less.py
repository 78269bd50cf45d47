"""LESS mode on a hand-computed tiny case."""

from __future__ import annotations

import math

import numpy as np
import torch

from diq.influence import adam_features, l2_normalize, less_combine


def test_adam_features_by_hand():
    g = torch.tensor([[1.0, -2.0]])
    m = torch.tensor([[0.5, 0.0]])
    v = torch.tensor([[0.25, 1.0]])
    f = adam_features(g, m, v)
    m2 = [0.9 * 0.5 + 0.1 * 1.0, 0.9 * 0 + 0.1 * -2.0]            # 0.55, -0.2
    v2 = [0.999 * 0.25 + 0.001 * 1.0, 0.999 * 1.0 + 0.001 * 4.0]  # 0.25075, 1.003
    exp = [m2[0] / math.sqrt(v2[0] + 1e-8), m2[1] / math.sqrt(v2[1] + 1e-8)]
    np.testing.assert_allclose(f[0].numpy(), exp, rtol=1e-6)


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

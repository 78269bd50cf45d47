"""Johnson–Lindenstrauss projection of per-sample gradients, one seeded Rademacher block per module.

The projection of a gradient g = (g_1, …, g_M) over M modules is Σ_m P_m g_m with P_m ∈ {±1/√k}^{k×d_m}
drawn from a generator seeded by (seed, module index). No dense matrix over all parameters ever exists;
each block is regenerated on demand (or kept, when all blocks fit in ``keep_bytes``), so the result depends
only on (seed, module order, k), never on batching.
"""

from __future__ import annotations

import torch


class RademacherProjector:
    def __init__(self, names: list[str], dims: dict[str, int], k: int, seed: int = 0,
                 keep_bytes: int = 512 * 2**20, device: str | torch.device = "cpu", keep_float: bool = False):
        self.names, self.dims, self.k, self.seed = list(names), dict(dims), int(k), int(seed)
        self.device = torch.device(device)
        self.keep_float = keep_float  # keep scaled float32 blocks (fast, 4× the memory) instead of int8 signs
        total = sum(dims[n] for n in names) * self.k * (4 if keep_float else 1)
        self._kept: dict[str, torch.Tensor] | None = {} if total <= keep_bytes else None

    def block(self, m: int) -> torch.Tensor:
        """[d_m, k] float32 block of module m (±1/√k)."""
        name = self.names[m]
        if self._kept is not None and name in self._kept:
            kept = self._kept[name]
            return kept if self.keep_float else kept.float().mul_(self.k ** -0.5)
        gen = torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + m)
        signs = torch.randint(0, 2, (self.dims[name], self.k), generator=gen, dtype=torch.int8).mul_(2).sub_(1)
        signs = signs.to(self.device)
        scaled = signs.float().mul_(self.k ** -0.5)
        if self._kept is not None:
            self._kept[name] = scaled if self.keep_float else signs
        return scaled

    def __call__(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        out = None
        for m, name in enumerate(self.names):
            part = grads[name].to(self.device) @ self.block(m)
            out = part if out is None else out.add_(part)
        return out

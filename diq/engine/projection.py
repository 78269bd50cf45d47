"""Random projections of per-sample gradients, one seeded block per module, so that the result depends only on
(seed, module order, k), never on batching.

``RademacherProjector`` — dense JL: Σ_m P_m g_m with P_m ∈ {±1/√k}^{k×d_m}. Its cost is O(d·k) per gradient and,
unless every block fits in ``keep_bytes``, O(d·k) generated random signs per call: for LESS's LoRA (r = 128 on
q/k/v/o, k = 8192) that is ~10¹¹ signs per batch on SmolLM2. Kept for the exact-vs-projected diagnostics.

``SparseJLProjector`` — sparse JL (Kane–Nelson block construction; ``nnz = 1`` is a count-sketch): coordinate i
of module m is added, with a hashed sign ±1/√c, to one bucket in each of c blocks of k/c buckets. The tables
(bucket, sign) are drawn once per module from a seeded generator, O(d) memory, and one projection costs
O(c·d) per gradient — independent of k. Inner products are preserved in expectation with the same O(1/k)
variance as dense JL (Kane & Nelson 2014; used for gradients by GraSS and FlashSketch).
"""

from __future__ import annotations

import torch

from diq.errors import DiqError

KINDS = ("sjlt", "rademacher")


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


class SparseJLProjector:
    def __init__(self, names: list[str], dims: dict[str, int], k: int, seed: int = 0, nnz: int = 1,
                 device: str | torch.device = "cpu"):
        self.names, self.dims, self.k, self.seed, self.nnz = list(names), dict(dims), int(k), int(seed), int(nnz)
        if self.nnz < 1 or self.k % self.nnz:
            raise DiqError(f"projection nnz={nnz} must be ≥ 1 and divide proj_dim={k}")
        self.device = torch.device(device)
        self._tables: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(bucket [c, d_m] int64, sign [c, d_m] float32 = ±1/√c) of module m, drawn once."""
        name = self.names[m]
        if name not in self._tables:
            c, d, blk = self.nnz, self.dims[name], self.k // self.nnz
            gen = torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + m)
            bucket = torch.randint(0, blk, (c, d), generator=gen) + (torch.arange(c) * blk)[:, None]
            sign = torch.randint(0, 2, (c, d), generator=gen, dtype=torch.int8).mul_(2).sub_(1).float()
            self._tables[name] = (bucket.to(self.device), sign.mul_(c ** -0.5).to(self.device))
        return self._tables[name]

    def __call__(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        first = grads[self.names[0]]
        out = torch.zeros(first.shape[0], self.k, device=self.device, dtype=torch.float32)
        for m, name in enumerate(self.names):
            g = grads[name].to(self.device, torch.float32)
            bucket, sign = self.tables(m)
            for j in range(self.nnz):
                out.index_add_(1, bucket[j], g * sign[j])
        return out


def make_projector(kind: str, names: list[str], dims: dict[str, int], k: int, seed: int = 0, nnz: int = 1,
                   device: str | torch.device = "cpu"):
    if kind == "sjlt":
        return SparseJLProjector(names, dims, k, seed=seed, nnz=nnz, device=device)
    if kind == "rademacher":
        return RademacherProjector(names, dims, k, seed=seed, device=device)
    raise DiqError(f"projection={kind!r}; choose one of {', '.join(KINDS)}")

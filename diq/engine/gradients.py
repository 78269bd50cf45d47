"""Per-sample LoRA gradients from ordinary batched forward/backward passes, captured with module hooks.

For a LoRA factor (an ``nn.Linear`` whose weight is trainable) with input x and output z = W x, the gradient
of sample b's loss is G_b = Σ_t (∂L_b/∂z_{b,t}) x_{b,t}ᵀ. We backpropagate L = Σ_b L_b once per batch: rows of
a batch never interact in a causal LM (right padding, attention mask), so ∂L/∂z_{b,·} = ∂L_b/∂z_{b,·} and the
hooked per-sample gradients are exact. Padded positions carry no loss and receive exactly zero gradient.

This module owns gradient capture only; ``influence.py`` owns what is done with the gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from diq.engine.formatting import Encoded, collate, per_sample_response_loss


def lora_modules(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The trainable Linear modules (LoRA A and B factors), in a fixed (name-sorted) order."""
    mods = [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.weight.requires_grad]
    if not mods:
        raise RuntimeError("no trainable Linear module found: attach a LoRA adapter first")
    return sorted(mods, key=lambda x: x[0])


class GradientCapture:
    """Context manager: forward hooks keep each LoRA factor's input and put a tensor hook on its output; the
    tensor hook turns (output grad, input) into per-sample weight gradients [B, out·in] in fp32."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.modules = lora_modules(model)
        self.names = [n for n, _ in self.modules]
        self.shapes = {n: tuple(m.weight.shape) for n, m in self.modules}
        self.grads: dict[str, torch.Tensor] = {}
        self._handles = []

    @property
    def dims(self) -> dict[str, int]:
        return {n: s[0] * s[1] for n, s in self.shapes.items()}

    def __enter__(self):
        for name, mod in self.modules:
            self._handles.append(mod.register_forward_hook(self._forward_hook(name)))
        # The hooks compute every per-sample weight gradient; autograd's own (batch-summed) LoRA weight gradients
        # would be computed and thrown away. So the factors are frozen while capturing and the graph is rooted at
        # the input embeddings instead: backward then computes activation gradients only (README, Measured: LESS's
        # r = 128 on SmolLM2). Models without input embeddings keep autograd's weight gradients.
        self._frozen = []
        get_emb = getattr(self.model, "get_input_embeddings", None)
        emb = get_emb() if callable(get_emb) else None
        if isinstance(emb, nn.Module):
            self._handles.append(emb.register_forward_hook(_require_grad))
            self._frozen = [m.weight for _, m in self.modules]
            for w in self._frozen:
                w.requires_grad_(False)
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for w in self._frozen:
            w.requires_grad_(True)
        self._frozen = []
        self.grads.clear()

    def _forward_hook(self, name):
        def hook(module, inputs, output):
            x = inputs[0].detach()

            def on_grad(go):
                g = torch.einsum("bto,bti->boi", go.float(), x.float())
                self.grads[name] = g.reshape(g.shape[0], -1)

            if output.requires_grad:
                output.register_hook(on_grad)
        return hook


def _require_grad(module, inputs, output):
    """Forward hook on the input embeddings: the graph starts here when the LoRA factors are frozen."""
    return output.requires_grad_(True) if output.is_floating_point() and not output.requires_grad else output


def resolve_batch_tokens(value, device) -> int:
    """``auto``: one sample per batch on CPU (batching buys nothing there and padding costs compute; measured in
    ``python -m diq.tools.bench``), 16384 padded tokens per batch on an accelerator."""
    if value in (None, "auto"):
        return 1 if str(device).startswith("cpu") else 16384
    return int(value)


def token_budget_batches(lengths: list[int], batch_tokens: int, max_batch: int = 64) -> list[list[int]]:
    """Length-sorted batches whose padded size (max length × count) stays within ``batch_tokens``.
    Sorting makes the padding per batch tiny; the order is deterministic (length, then index)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, cur, cur_max = [], [], 0
    for i in order:
        L = lengths[i]
        new_max = max(cur_max, L)
        if cur and (new_max * (len(cur) + 1) > batch_tokens or len(cur) >= max_batch):
            batches.append(cur)
            cur, new_max = [], L
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


@dataclass
class GradBatch:
    index: list[int]                 # positions in the encoded list
    grads: dict[str, torch.Tensor]   # module → [B, d_m] fp32 per-sample gradients
    losses: torch.Tensor             # [B] per-sample mean response-token loss


def iter_per_sample_grads(model: nn.Module, encoded: list[Encoded], pad_id: int, batch_tokens: int = 4096,
                          max_batch: int = 64, desc: str = "grads", progress: bool = True,
                          shard: tuple[int, int] = (0, 1)) -> Iterator[GradBatch]:
    """Yield exact per-sample gradients batch by batch. Memory grows with the batch, never with the pool.

    ``shard=(i, n)`` processes batches i, i+n, i+2n, … of the global plan, so the union of n shards computes
    exactly the batches an unsharded pass does (bitwise-identical results)."""
    device = next(p for p in model.parameters() if p.requires_grad).device
    batches = token_budget_batches([len(e.input_ids) for e in encoded], batch_tokens, max_batch)
    batches = batches[shard[0]::shard[1]]
    bar = tqdm(total=sum(len(b) for b in batches), desc=desc, unit="sample", disable=not progress,
               dynamic_ncols=True)
    with GradientCapture(model) as cap:
        for idx in batches:
            batch = collate([encoded[i] for i in idx], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            model.zero_grad(set_to_none=True)
            losses = per_sample_response_loss(model, batch)
            losses.sum().backward()
            grads = {n: cap.grads.pop(n) for n in cap.names}
            model.zero_grad(set_to_none=True)
            yield GradBatch(idx, grads, losses.detach().float().cpu())
            bar.update(len(idx))
    bar.close()


def flatten(grads: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([grads[n] for n in names], dim=1)

"""Turn canonical records into chat-template token ids with a response-only loss mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diq.errors import DiqError

RESPONSE_FORMAT = "## Thinking\n\n{reasoning}\n\n## Final Response\n\n{response}"
IGNORE = -100


def assistant_text(rec: dict, fmt: str = RESPONSE_FORMAT) -> str:
    if not rec.get("reasoning"):
        return rec["response"]
    return fmt.format(reasoning=rec["reasoning"], response=rec["response"])


@dataclass
class Encoded:
    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def n_response(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def encode(tok, rec: dict, max_length: int, fmt: str = RESPONSE_FORMAT, max_response_tokens: int | None = None) -> Encoded:
    """Prompt = chat template up to the assistant turn; labels cover only the assistant's tokens.

    ``max_response_tokens`` keeps only the first N response tokens (a fast scoring mode).
    """
    user = [{"role": "user", "content": rec["question"]}]
    prompt = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template(user + [{"role": "assistant", "content": assistant_text(rec, fmt)}],
                                   tokenize=True, return_dict=True)["input_ids"]
    if full[: len(prompt)] != prompt:
        raise DiqError(f"sample {rec['id']}: the model's chat template does not render the prompt as a prefix of "
                       f"the full conversation; response-only masking needs that\n"
                       f"  fix: use a model whose chat template is prefix-stable (most instruct models are)")
    response = full[len(prompt):]
    if max_response_tokens is not None:
        response = response[: int(max_response_tokens)]
    # An over-long prompt is cut in the middle (the template's opening tokens and the prompt's end, where the
    # question and the assistant header are, survive) so that at least a quarter of max_length is response.
    room = max_length - min(len(response), max_length // 4)
    if len(prompt) > room and room > 16:
        prompt = prompt[:8] + prompt[len(prompt) - (room - 8):]
    ids = (prompt + response)[:max_length]
    labels = [IGNORE] * min(len(prompt), len(ids)) + ids[len(prompt):]
    enc = Encoded(rec["id"], list(ids), labels)
    if enc.n_response == 0:
        raise DiqError(f"sample {rec['id']}: its prompt alone has {len(prompt)} tokens, so max_length={max_length} "
                       f"leaves no response token to learn from\n  fix: raise train.max_length (or drop the sample)")
    return enc


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; pads get attention 0 and label IGNORE."""
    n = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, e in enumerate(batch):
        L = len(e.input_ids)
        ids[i, :L] = torch.tensor(e.input_ids)
        labels[i, :L] = torch.tensor(e.labels)
        mask[i, :L] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token CE of next-token prediction and the mask of counted tokens, both [B, T-1]."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE
    ce = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                           shift_labels.clamp_min(0).reshape(-1), reduction="none")
    return ce.view_as(shift_labels) * mask, mask


def per_sample_mean_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token CE over each sample's response tokens: the per-sample loss DIQ differentiates."""
    ce, mask = token_losses(logits, labels)
    return ce.sum(1) / mask.sum(1).clamp_min(1)


def _decoder_and_head(model):
    """(decoder, lm_head) of a causal LM (through a peft wrapper), or None where the model post-processes its
    logits (softcapping, scaling) and the full forward must be used."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(base, "config", None)
    if cfg is None or getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    try:
        dec, head = base.get_decoder(), base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if dec is None or head is None or dec is base:
        return None
    return dec, head


def response_token_losses(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token CE at response positions only, and the sample index of each token.

    The LM head and the softmax run on the response positions alone (the vocabulary projection of prompt and
    padding tokens is never computed), which saves time and most of the logits' memory. Numerically the same
    as the full forward (tests compare against ``model(...).logits``)."""
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    parts = _decoder_and_head(model)
    if parts is None:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ce, m = token_losses(logits, batch["labels"])
        return ce[m], m.nonzero()[:, 0]
    dec, head = parts
    h = dec(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    sel = h[:, :-1][mask]
    ce = torch.nn.functional.cross_entropy(head(sel).float(), labels[mask], reduction="none")
    return ce, mask.nonzero()[:, 0]


def per_sample_response_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean response-token CE per sample (the loss DIQ differentiates), via :func:`response_token_losses`."""
    ce, seg = response_token_losses(model, batch)
    n = batch["input_ids"].shape[0]
    sums = torch.zeros(n, dtype=ce.dtype, device=ce.device).index_add(0, seg, ce)
    counts = torch.zeros(n, dtype=ce.dtype, device=ce.device).index_add(0, seg, torch.ones_like(ce))
    return sums / counts.clamp_min(1)

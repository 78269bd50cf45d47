"""Cheap difficulty proxies (higher = harder), all from one base-model forward pass per sample or less.

- ``length``: reasoning (+ response) length in tokens (s1: longer traces = harder problems).
- ``loss``: mean response-token CE under the base model (perplexity).
- ``ifd``: Cherry-LLM IFD = mean CE(answer | question) / mean CE(answer).
- ``pass_rate``: 1 − p(correct option) of the base model, zero-shot log-likelihood over the option letters, on
  items with a gold answer (s1/m1: items the base model solves are easy); items without options get NaN and
  must be excluded from a pass-rate selection.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from diq.engine.formatting import assistant_text, collate, encode, per_sample_response_loss
from diq.engine.gradients import token_budget_batches


def length_tokens(tok, records: list[dict]) -> np.ndarray:
    return np.array([len(tok(assistant_text(r), add_special_tokens=False)["input_ids"]) for r in records], float)


@torch.no_grad()
def response_losses(model, tok, records: list[dict], max_length: int, batch_tokens: int = 4096,
                    drop_question: bool = False, desc: str = "loss") -> np.ndarray:
    model.eval()
    recs = [{**r, "question": ""} if drop_question else r for r in records]
    enc = [encode(tok, r, max_length) for r in recs]
    out = np.zeros(len(enc))
    dev = next(model.parameters()).device
    for idx in tqdm(token_budget_batches([len(e.input_ids) for e in enc], batch_tokens), desc=desc):
        b = {k: v.to(dev) for k, v in collate([enc[i] for i in idx], tok.pad_token_id).items()}
        out[idx] = per_sample_response_loss(model, b).double().cpu().numpy()
    return out


def ifd(model, tok, records, max_length: int, batch_tokens: int = 4096) -> np.ndarray:
    cond = response_losses(model, tok, records, max_length, batch_tokens, desc="ifd: CE(answer|question)")
    uncond = response_losses(model, tok, records, max_length, batch_tokens, drop_question=True,
                             desc="ifd: CE(answer)")
    return cond / np.maximum(uncond, 1e-12)


@torch.no_grad()
def pass_rate_difficulty(model, tok, records) -> np.ndarray:
    model.eval()
    out = np.full(len(records), np.nan)
    for i, r in enumerate(tqdm(records, desc="pass rate")):
        opts, ans = r.get("options"), r.get("answer")
        if not opts or ans not in (opts or {}):
            continue
        letters = list(opts)
        block = "\n".join(f"{k}. {v}" for k, v in opts.items())
        prompt = tok.apply_chat_template([{"role": "user", "content": f"{r['question']}\n\nOptions:\n{block}\n\n"
                                           "Answer with the letter of the correct option."}],
                                         add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        prefix = tok("The answer is", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + prefix], device=next(model.parameters()).device)
        logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
        cand = [tok(" " + l, add_special_tokens=False)["input_ids"][0] for l in letters]
        p = torch.softmax(logp[cand], -1)
        out[i] = 1.0 - float(p[letters.index(ans)])
    return out

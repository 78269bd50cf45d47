"""A sequence classifier trained on judge labels: 3 perspectives × 5 levels from one backbone.

Any ``AutoModelForSequenceClassification`` backbone works (default: BiomedBERT from the hub; offline tests use
the tiny model). Recipe [docs/method.md]: lr 5e-5, cosine, weight decay 0.01, best macro-F1 checkpoint on a held-out
split. The score is the expected level Σ_k p_k·k per perspective.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from diq.artifacts import write_json
from diq.errors import DiqError
from diq.stages.score.difficulty import PERSPECTIVES

LEVELS = 5


def _text(rec: dict) -> str:
    return f"{rec['question']}\n\n{rec.get('reasoning') or ''}\n\n{rec['response']}"


def _load(backbone: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(backbone)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=len(PERSPECTIVES) * LEVELS,
                                                               trust_remote_code=False)
    model.config.pad_token_id = tok.pad_token_id
    return tok, model


def _batches(tok, texts, max_length, bs):
    for s in range(0, len(texts), bs):
        enc = tok(texts[s: s + bs], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        yield s, enc


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    f1s = []
    for c in np.unique(np.concatenate([y_true, y_pred])):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def read_labels(path: Path) -> dict[str, dict[str, float]]:
    """Judge JSONL {id, perspective, rating} → id → perspective → rating."""
    out: dict[str, dict[str, float]] = {}
    if not Path(path).is_file():
        raise DiqError(f"labels file not found: {path}\n  fix: pass the JSONL written by `python -m diq.stages.score.difficulty "
                       f"judge --out FILE`")
    for n, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            out.setdefault(str(r["id"]), {})[r["perspective"]] = float(r["rating"])
        except (json.JSONDecodeError, KeyError, ValueError) as e:
            raise DiqError(f"{path}:{n}: bad label line ({e})\n  fix: each line must be "
                           f'{{"id": ..., "perspective": ..., "rating": 1-5}}') from None
    return out


def train_classifier(records: list[dict], labels: dict[str, dict[str, float]], backbone: str, out_dir: Path,
                     epochs: int = 3, lr: float = 5e-5, weight_decay: float = 0.01, batch_size: int = 8,
                     max_length: int = 512, val_fraction: float = 0.2, seed: int = 0) -> dict:
    from transformers import get_scheduler

    rows = [r for r in records if r["id"] in labels and all(p in labels[r["id"]] for p in PERSPECTIVES)]
    if len(rows) < 5:
        raise DiqError(f"only {len(rows)} pool records have judge labels for all of {PERSPECTIVES}\n"
                       f"  fix: run the judge on more records (python -m diq.stages.score.difficulty judge ...)")
    y = np.array([[int(min(5, max(1, round(labels[r["id"]][p])))) - 1 for p in PERSPECTIVES] for r in rows])
    rng = random.Random(seed)
    idx = list(range(len(rows)))
    rng.shuffle(idx)
    n_val = max(1, int(round(val_fraction * len(rows))))
    va, tr = idx[:n_val], idx[n_val:]
    torch.manual_seed(seed)
    tok, model = _load(backbone)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(tr) / batch_size)
    sched = get_scheduler("cosine", opt, num_warmup_steps=0, num_training_steps=steps)
    texts = [_text(r) for r in rows]
    best, history = -1.0, []
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        rng.shuffle(tr)
        for s in tqdm(range(0, len(tr), batch_size), desc=f"classifier epoch {ep + 1}", leave=False):
            b = tr[s: s + batch_size]
            enc = tok([texts[i] for i in b], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            logits = model(**enc).logits.view(len(b), len(PERSPECTIVES), LEVELS)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, LEVELS), torch.tensor(y[b]).reshape(-1))
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
        probs = _predict_probs(tok, model, [texts[i] for i in va], max_length, batch_size)
        f1 = float(np.mean([macro_f1(y[va, j], probs[:, j].argmax(-1)) for j in range(len(PERSPECTIVES))]))
        history.append({"epoch": ep + 1, "val_macro_f1": f1})
        if f1 > best:
            best = f1
            model.save_pretrained(out_dir)
            tok.save_pretrained(out_dir)
    info = {"backbone": backbone, "n_train": len(tr), "n_val": len(va), "best_val_macro_f1": best,
            "history": history, "seconds": time.time() - t0, "perspectives": list(PERSPECTIVES)}
    write_json(Path(out_dir) / "diq_classifier.json", info)
    return info


def _predict_probs(tok, model, texts, max_length, bs) -> np.ndarray:
    model.eval()
    out = np.zeros((len(texts), len(PERSPECTIVES), LEVELS))
    with torch.no_grad():
        for s, enc in _batches(tok, texts, max_length, bs):
            logits = model(**enc).logits.view(-1, len(PERSPECTIVES), LEVELS)
            out[s: s + logits.shape[0]] = torch.softmax(logits.float(), -1).numpy()
    return out


def predict(model_dir: str, records: list[dict], max_length: int = 512, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Expected level (1..5) per perspective for every record."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (Path(model_dir) / "config.json").exists():
        raise DiqError(f"difficulty classifier not found at {model_dir}\n"
                       f"  fix: train one first: python -m diq.stages.score.difficulty train ...")
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    probs = _predict_probs(tok, model, [_text(r) for r in records], max_length, batch_size)
    ev = (probs * np.arange(1, LEVELS + 1)).sum(-1)
    return {p: ev[:, j] for j, p in enumerate(PERSPECTIVES)}

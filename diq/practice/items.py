"""What gets rated: training samples (selected vs not selected by a run) and generations of fine-tuned models.

An item is ``{item_id, kind, group, source_id, question, text}``. ``item_id`` is content-addressed (kind, source id
and text), so it is stable across exports and runs; ``group`` is what the comparison is between (``selected`` /
``unselected``, or a run's label) and is hidden from raters in the review pack.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from omegaconf import OmegaConf

from diq.engine.formatting import assistant_text
from diq.errors import DiqError
from diq.record import RunRecord


def item_id(kind: str, source_id: str, text: str) -> str:
    return kind[0] + "-" + hashlib.sha256(f"{kind}\x00{source_id}\x00{text}".encode()).hexdigest()[:12]


def make_item(kind: str, group: str, source_id: str, question: str, text: str, **extra) -> dict:
    return {"item_id": item_id(kind, source_id, text), "kind": kind, "group": group, "source_id": source_id,
            "question": question, "text": text, **extra}


def read_record(path: str | Path) -> tuple[RunRecord, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / "record.json"
    if not p.exists():
        raise DiqError(f"{p}: no such record\n  fix: pass a run folder or its record.json (runs/<experiment>/<time>/)")
    rec = RunRecord.from_json(json.loads(p.read_text(encoding="utf-8")))
    if not rec.complete:
        raise DiqError(f"{p}: the run did not complete (status {rec.status!r})\n  fix: rerun it first")
    return rec, p


def run_label(rec: RunRecord) -> str:
    return f"{rec.strategy} {rec.budget_fraction * 100:g}% seed{rec.seed}"


def sample_items(rec: RunRecord, n: int, seed: int = 0) -> list[dict]:
    """Up to ``n`` selected and ``n`` unselected pool samples of a run, drawn with ``seed``."""
    from diq.stages.pool.load import load_pool

    ids_path = Path(rec.stages.select.selected_ids_path)
    if not ids_path.exists():
        raise DiqError(f"{ids_path}: the run's selected ids are missing (record field selected_ids_path)\n"
                       f"  fix: rerun the run, or pass the folder it was moved to")
    selected = set(json.loads(ids_path.read_text(encoding="utf-8")))
    pool = load_pool(OmegaConf.create(rec.cfg("pool")))
    sel = [r for r in pool if r["id"] in selected]
    rest = [r for r in pool if r["id"] not in selected]
    if not rest:
        raise DiqError(f"run {run_label(rec)} selected the whole pool: there is no unselected group to compare with")
    rng = random.Random(seed)
    out = []
    for group, rows in (("selected", sel), ("unselected", rest)):
        for r in rng.sample(rows, min(n, len(rows))):
            out.append(make_item("sample", group, r["id"], r["question"], assistant_text(r)))
    return out


def eval_questions(source: str, n: int) -> list[dict]:
    """A fixed question set: ``pubmedqa`` (the first n of the bundled official test split, with their abstracts)
    or a .json/.jsonl file with ``id`` and ``question`` fields."""
    if source == "pubmedqa":
        from diq.tasks.mcq import pubmedqa_split

        rows = sorted(pubmedqa_split("test"), key=lambda r: r["id"])[:n]
        return [{"id": r["id"], "question": f"{r['context']}\n\n{r['question']}"} for r in rows]
    p = Path(source)
    if not p.exists():
        raise DiqError(f"--questions {source}: no such file\n  fix: use 'pubmedqa' or a .json/.jsonl file with "
                       f"id and question fields")
    text = p.read_text(encoding="utf-8")
    rows = [json.loads(x) for x in text.splitlines() if x.strip()] if p.suffix == ".jsonl" else json.loads(text)
    for i, r in enumerate(rows, 1):
        if "question" not in r:
            raise DiqError(f"{p}: record {i} has no 'question' field\n  fix: add it (and an 'id')")
    return [{"id": str(r.get("id", i)), "question": r["question"]} for i, r in enumerate(rows[:n], 1)]


def generate(model_path: str, adapter: str | None, questions: list[dict], max_new_tokens: int, device: str = "cpu",
             batch_size: int = 4) -> list[str]:
    """Greedy answers of base + adapter, chat-templated, batched with left padding."""
    import torch

    from diq.engine.models import load_model, load_tokenizer

    tok = load_tokenizer(model_path)
    model = load_model(model_path, device=device)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    tok.padding_side = "left"
    out = []
    for s in range(0, len(questions), batch_size):
        chunk = questions[s: s + batch_size]
        texts = [tok.apply_chat_template([{"role": "user", "content": q["question"]}], add_generation_prompt=True,
                                         tokenize=False) for q in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        out.extend(tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return [o.strip() for o in out]


def generation_items(rec: RunRecord, questions: list[dict], max_new_tokens: int, cache_dir: Path,
                     device: str = "cpu") -> list[dict]:
    """Generations of a run's fine-tuned model on ``questions``; cached per (adapter, questions, settings)."""
    from diq.artifacts import StageDir, write_json

    if not rec.stages.train.train:
        raise DiqError(f"run {run_label(rec)} ({rec.output_dir}) stopped before training "
                       f"(stop_after={(rec.config or {}).get('stop_after')}): it has no fine-tuned model to generate with\n"
                       f"  fix: pass runs that trained (stop_after=train or eval)")
    adapter = rec.stages.train.train["adapter"]
    from diq.engine.models import model_key

    stage = StageDir(cache_dir, "practice_gen", {"model": model_key(rec.model_path), "adapter": model_key(adapter),
                                                 "questions": [q["id"] for q in questions],
                                                 "max_new_tokens": max_new_tokens})
    def answer(folder):
        write_json(folder / "answers.json", generate(rec.model_path, adapter, questions, max_new_tokens,
                                                     device=device))

    stage.get_or_compute(answer)
    answers = json.loads((stage.path / "answers.json").read_text(encoding="utf-8"))
    label = run_label(rec)
    return [make_item("generation", label, q["id"], q["question"], a) for q, a in zip(questions, answers)]

"""The validation set D_val: k items per target benchmark, from train/dev splits only, never scored test items.

Each item becomes an SFT-style canonical record (question with its options → reasoning → "The answer is X."),
so its gradient is taken exactly like a pool sample's. The ids are recorded and hashed into score cache keys.
"""

from __future__ import annotations

import random

from omegaconf import DictConfig, OmegaConf

from .artifacts import sha256_obj
from .errors import DiqError
from .tasks import mcq


def _as_record(doc: dict, task: str, reasoning: str = "") -> dict:
    return {"id": f"val:{doc['id']}", "task": task, "question": mcq.cot_text(doc), "reasoning": reasoning,
            "response": f"The answer is {mcq.target_letter(doc)}.", "options": None, "answer": mcq.target_letter(doc)}


def _source_docs(src: dict) -> tuple[list[dict], dict[str, str]]:
    kind = src["kind"]
    if kind == "pubmedqa_pqal_train":
        import json

        docs = mcq.pubmedqa_split("train")
        test_ids = set(json.loads((mcq.DATA / "pubmedqa_test_ground_truth.json").read_text(encoding="utf-8")))
        leak = [d["id"] for d in docs if d["id"].split(":", 1)[1] in test_ids]
        assert not leak, f"PubMedQA validation side overlaps the test split: {leak[:5]}"
        pqal = json.loads((mcq.DATA / "pubmedqa_pqal.json").read_text(encoding="utf-8"))
        return docs, {d["id"]: pqal[d["id"].split(":", 1)[1]]["LONG_ANSWER"] for d in docs}
    if kind == "local_file":
        loc = {k: v for k, v in src.items() if k in ("question_field", "options_field", "answer_field", "id_field",
                                                     "context_field")}
        return mcq.read_local_mcq(src["path"], **loc), {}
    if kind == "hub":
        import datasets

        from .hub import ensure_hub_reachable

        ensure_hub_reachable(src["hub_id"], "dataset", "a local_file validation source (scoring.validation.sources)")
        ds = datasets.load_dataset(src["hub_id"], src.get("hub_config"), split=src["split"])
        proc = getattr(mcq, src["process_docs"])
        return [dict(d) for d in proc(ds)], {}
    raise DiqError(f"validation source {src.get('name')!r}: unknown kind {kind!r}; choose pubmedqa_pqal_train, "
                   f"local_file or hub")


def build_validation(cfg: DictConfig, seed: int) -> tuple[list[dict], dict]:
    """Return (records, info). ``cfg`` is ``scoring.validation``: ``per_task`` (default k) and ``sources``
    (each with ``name``, ``kind`` and an optional ``per_task`` override)."""
    sources = OmegaConf.to_container(cfg.sources, resolve=True)
    if not sources:
        raise DiqError("scoring.validation.sources is empty\n  fix: list at least one benchmark's train/dev source")
    out, info = [], {"tasks": {}}
    for src in sources:
        k = int(src.get("per_task") or cfg.per_task)
        docs, reasoning = _source_docs(src)
        if len(docs) < k:
            raise DiqError(f"validation source {src['name']!r} has {len(docs)} items, fewer than per_task={k}\n"
                           f"  fix: lower scoring.validation.per_task or add items")
        rng = random.Random(f"{seed}:{src['name']}")
        chosen = sorted(rng.sample(range(len(docs)), k))
        recs = [_as_record(docs[i], src["name"], reasoning.get(docs[i]["id"], "")) for i in chosen]
        out.extend(recs)
        info["tasks"][src["name"]] = [r["id"] for r in recs]
    info["n"] = len(out)
    info["hash"] = sha256_obj([{k: r[k] for k in ("id", "task", "question", "reasoning", "response")} for r in out])
    return out, info

"""Preference pairs for the DPO stage (``conf/preference/``): ``prompt``, ``chosen``, ``rejected`` per pair.

Three sources, one schema:

- ``hub``: a Hub dataset with a field mapping (default ``trl-lib/ultrafeedback_binarized``, the set TRL's own DPO
  examples train on). Columns may be text, or conversations (lists of ``{role, content}``), as on the Hub: a
  conversation's last assistant turn is the response; when ``prompt`` is not mapped, the chosen conversation's
  user turns are the prompt (TRL's "implicit prompt").
- ``local``: a .json/.jsonl/.parquet/.csv file with the same field mapping (like ``pool=local``).
- ``pubmedqa_pairs``: built here from the bundled PubMedQA PQA-L items outside the official test split — prompt =
  the question with its context and options (the SFT prompt of ``pool=planted``'s in-domain samples); chosen = the
  expert's long answer as reasoning, then "The answer is <gold letter>."; rejected = the same reasoning, then
  "The answer is <another letter>" (seeded). Pairs therefore differ only in the final answer.

``holdout`` pairs (seeded) are kept out of training: the stage measures the chosen-over-rejected log-probability
margin on them before and after DPO.
"""

from __future__ import annotations

import random

from omegaconf import DictConfig, OmegaConf

from diq.artifacts import sha256_obj
from diq.errors import DiqError

FIELDS = ("prompt", "chosen", "rejected")


def _text(value, field: str, src: str, row: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        turns = [m for m in value if m.get("role") == "assistant"] or value
        return str(turns[-1]["content"])
    raise DiqError(f"{src}: pair {row}: field {field!r} is a {type(value).__name__}, not text or a conversation\n"
                   f"  fix: map preference.fields.{field} to a text column (or a list of {{role, content}} turns)")


def _implicit_prompt(value, src: str, row: int) -> str:
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        users = [str(m["content"]) for m in value if m.get("role") == "user"]
        if users:
            return "\n\n".join(users)
    raise DiqError(f"{src}: pair {row}: preference.fields.prompt is null, so the prompt must come from the chosen "
                   f"conversation's user turns, but it has none\n  fix: map preference.fields.prompt to a column")


def canonical_pairs(rows: list[dict], fields: dict, src: str) -> list[dict]:
    if not rows:
        raise DiqError(f"{src}: no preference pairs\n  fix: point preference.path at a file with at least one pair")
    present = set(rows[0])
    for f in FIELDS:
        col = fields.get(f)
        if col is None and f == "prompt":
            continue
        if col is None or col not in present:
            raise DiqError(f"{src}: preference.fields.{f}={col!r} is not a column (they have: "
                           f"{', '.join(sorted(present)[:12])})\n  fix: set preference.fields.{f}=<one of those>")
    out, seen = [], set()
    for i, r in enumerate(rows, 1):
        missing = [f for f in FIELDS if fields.get(f) is not None and r.get(fields[f]) in (None, "", [])]
        if missing:
            raise DiqError(f"{src}: pair {i} has an empty {missing[0]!r} (column {fields[missing[0]]!r})\n"
                           f"  fix: remove the pair or fill the field")
        chosen = _text(r[fields["chosen"]], "chosen", src, i)
        rejected = _text(r[fields["rejected"]], "rejected", src, i)
        prompt = (_text(r[fields["prompt"]], "prompt", src, i) if fields.get("prompt")
                  else _implicit_prompt(r[fields["chosen"]], src, i))
        if chosen.strip() == rejected.strip():
            raise DiqError(f"{src}: pair {i}: chosen and rejected are the same text, so it carries no preference\n"
                           f"  fix: remove the pair")
        pid = str(r[fields["id"]]) if fields.get("id") and r.get(fields["id"]) is not None else \
            "pref:" + sha256_obj([prompt, chosen, rejected])[:12]
        if pid in seen:
            raise DiqError(f"{src}: pair {i}: duplicate id {pid!r}\n  fix: deduplicate the file")
        seen.add(pid)
        out.append({"id": pid, "prompt": prompt, "chosen": chosen, "rejected": rejected})
    return out


def pubmedqa_pairs(seed: int) -> list[dict]:
    import json

    from diq.tasks import mcq

    pqal = json.loads((mcq.DATA / "pubmedqa_pqal.json").read_text(encoding="utf-8"))
    rng = random.Random(f"pubmedqa_pairs:{seed}")
    out = []
    for d in mcq.pubmedqa_split("train"):
        gold = mcq.target_letter(d)
        wrong = rng.choice([x for x in d["letters"] if x != gold])
        reasoning = pqal[d["id"].split(":", 1)[1]]["LONG_ANSWER"]
        out.append({"id": f"pref:{d['id']}", "prompt": mcq.cot_text(d),
                    "chosen": f"## Thinking\n\n{reasoning}\n\n## Final Response\n\nThe answer is {gold}.",
                    "rejected": f"## Thinking\n\n{reasoning}\n\n## Final Response\n\nThe answer is {wrong}."})
    return out


def load_preference(pcfg: DictConfig) -> tuple[list[dict], list[dict], dict]:
    """(training pairs, held-out pairs, info with the data hash)."""
    kind = pcfg.get("kind")
    fields = OmegaConf.to_container(pcfg.fields, resolve=True) if pcfg.get("fields") is not None else {}
    if kind == "pubmedqa_pairs":
        pairs, src = pubmedqa_pairs(int(pcfg.get("seed") or 0)), "bundled PubMedQA PQA-L (non-test) pairs"
    elif kind == "local":
        from diq.stages.pool.load import _read_local, resolve_path

        if not pcfg.get("path") or pcfg.path == "???":
            raise DiqError("preference=local needs preference.path\n  fix: preference.path=/data/pairs.jsonl "
                           "(fields mapped by preference.fields.prompt/chosen/rejected)")
        path = resolve_path(str(pcfg.path))
        rows = _read_local(path, pcfg.get("records_key"), key="preference",
                           alt="(or preference=pubmedqa_pairs for the bundled pairs)")
        pairs, src = canonical_pairs(rows, fields, str(path)), str(path)
    elif kind == "hub":
        from diq.engine.hub import load_dataset

        ds = load_dataset(pcfg.hub_id, pcfg.get("hub_config"), pcfg.get("split", "train"),
                          "preference=pubmedqa_pairs (bundled) or preference=local preference.path=/path/pairs.jsonl")
        rows = [dict(r) for r in ds]
        pairs, src = canonical_pairs(rows, fields, f"{pcfg.hub_id} ({pcfg.get('split', 'train')})"), pcfg.hub_id
    else:
        raise DiqError(f"preference.kind={kind!r}\n  fix: one of pubmedqa_pairs, local, hub (conf/preference/)")
    limit, holdout = pcfg.get("limit"), int(pcfg.get("holdout") or 0)
    rng = random.Random(f"preference:{int(pcfg.get('seed') or 0)}")
    order = list(range(len(pairs)))
    rng.shuffle(order)
    held = [pairs[i] for i in order[:holdout]]
    train = [pairs[i] for i in order[holdout:]]
    if limit is not None:
        train = train[: int(limit)]
    if len(train) < 1:
        raise DiqError(f"{src}: {len(pairs)} pairs, {holdout} held out: none left to train on\n"
                       f"  fix: lower preference.holdout or use a larger preference set")
    info = {"source": src, "kind": kind, "n_train": len(train), "n_heldout": len(held),
            "hash": sha256_obj([[p["id"], p["prompt"], p["chosen"], p["rejected"]] for p in train]),
            "heldout_hash": sha256_obj([p["id"] for p in held])}
    return train, held, info


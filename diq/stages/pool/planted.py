"""A planted-signal pool: the known answer to "does the selection find what matters?" (experiments/planted.yaml).

To the configured pool (the bundled 198 medical-o1 samples) it adds, seeded:

- ``n_in_domain`` PubMedQA PQA-L items from outside the official test split *and* outside the run's validation
  set, in the SFT response format (context + question + options → the expert's long answer as reasoning →
  "The answer is X."): samples that should be influential for a PubMedQA evaluation;
- ``n_corrupted`` copies of pool samples, half with their final response swapped for another sample's, half with
  their reasoning taken from a different question: samples a good selection should avoid.

The true origin of every sample (``original``, ``in_domain``, ``corrupted``) is kept out of the records the
strategies see; the run writes it to ``planted_origins.json`` and measures the selection against it.
"""

from __future__ import annotations

import random

from diq.artifacts import sha256_text
from diq.errors import DiqError
from diq.tasks import mcq


def plant(records: list[dict], pcfg, exclude_ids: set[str]) -> tuple[list[dict], dict[str, str]]:
    n_in, n_bad, seed = int(pcfg.n_in_domain), int(pcfg.n_corrupted), int(pcfg.seed)
    if n_in < 0 or n_bad < 0 or n_bad > len(records):
        raise DiqError(f"pool.planted: n_in_domain={n_in}, n_corrupted={n_bad} for a {len(records)}-sample pool\n"
                       f"  fix: non-negative counts, at most the pool size of corrupted copies")
    rng = random.Random(f"planted:{seed}")
    side = [d for d in mcq.pubmedqa_split("train") if f"val:{d['id']}" not in exclude_ids]
    if n_in > len(side):
        raise DiqError(f"pool.planted.n_in_domain={n_in}: only {len(side)} PubMedQA PQA-L items lie outside the test "
                       f"split and the validation set\n  fix: lower n_in_domain")
    import json

    pqal = json.loads((mcq.DATA / "pubmedqa_pqal.json").read_text(encoding="utf-8"))
    origins = {r["id"]: "original" for r in records}
    out = list(records)
    for d in rng.sample(side, n_in):
        rec = {"id": f"planted-in:{d['id'].split(':', 1)[1]}", "question": mcq.cot_text(d),
               "reasoning": pqal[d["id"].split(":", 1)[1]]["LONG_ANSWER"],
               "response": f"The answer is {mcq.target_letter(d)}.", "options": None, "answer": None}
        out.append(rec)
        origins[rec["id"]] = "in_domain"
    src = rng.sample(range(len(records)), n_bad)
    for j, i in enumerate(src):
        r = records[i]
        other = records[(i + 1 + rng.randrange(len(records) - 1)) % len(records)]
        bad = dict(r)
        if j % 2 == 0:
            bad["response"], kind = other["response"], "answer swapped"
        else:
            bad["reasoning"], kind = other["reasoning"], "reasoning from another question"
        bad["id"] = "planted-bad:" + sha256_text(f"{r['id']}:{kind}:{other['id']}")[:12]
        out.append(bad)
        origins[bad["id"]] = "corrupted"
    return out, origins


def measure(selected: list[str], origins: dict[str, str]) -> dict:
    """Precision of in-domain samples among those selected, share of corrupted ones, against their base rates."""
    n = len(origins)
    counts = {k: sum(v == k for v in origins.values()) for k in ("original", "in_domain", "corrupted")}
    sel = [origins[i] for i in selected]
    k = len(sel) or 1
    return {"n_pool": n, "counts": counts, "n_selected": len(sel),
            "base_rate_in_domain": counts["in_domain"] / n, "base_rate_corrupted": counts["corrupted"] / n,
            "precision_in_domain": sel.count("in_domain") / k, "share_corrupted": sel.count("corrupted") / k,
            "recall_in_domain": sel.count("in_domain") / (counts["in_domain"] or 1)}

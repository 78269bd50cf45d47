"""The validation set D_val: k items per target benchmark, from train/dev splits only, never scored test items.

Each item becomes an SFT-style canonical record (question with its options → reasoning → "The answer is X."),
so its gradient is taken exactly like a pool sample's. The ids are recorded and hashed into score cache keys.
"""

from __future__ import annotations

import json
import random

from omegaconf import DictConfig, OmegaConf

from diq.artifacts import sha256_obj
from diq.errors import DiqError
from diq.tasks import mcq


def _as_record(doc: dict, task: str, reasoning: str = "") -> dict:
    return {"id": f"val:{doc['id']}", "task": task, "question": mcq.cot_text(doc), "reasoning": reasoning,
            "response": f"The answer is {mcq.target_letter(doc)}.", "options": None, "answer": mcq.target_letter(doc),
            "content": mcq.content_text(doc), "raw_question": doc["question"]}


def auto_sources(eval_cfg, plan=None) -> list[dict]:
    """The validation follows the evaluation: one source per averaged benchmark (category S or C), from the
    task's ``validation`` spec (its train/dev split, or ``holdout`` items of the benchmark file itself)."""
    from diq.tasks.specs import task_specs

    out, seen = [], {}
    for spec in (plan.specs if plan is not None else task_specs(eval_cfg)):
        if spec.get("category") not in ("S", "C"):
            continue
        v = dict(spec.get("validation") or {})
        if not v:
            raise DiqError(f"eval task {spec['name']!r} (category {spec['category']}) has no validation source, so "
                           f"influence cannot be measured against it\n  fix: give the task a `validation:` block "
                           f"(kind: hub | local_file | pubmedqa_pqal_train | holdout), or list "
                           f"scoring.validation.sources by hand")
        if v.get("kind") == "holdout":
            v.update(spec=spec, holdout=int(eval_cfg.get("holdout", 0) or 0),
                     holdout_seed=int(eval_cfg.get("holdout_seed", 0)))
        else:
            key = json.dumps(v, sort_keys=True)
            if key in seen:  # two tasks of one benchmark share one validation source
                continue
            seen[key] = spec["name"]
        out.append({"name": spec["name"], **v})
    if not out:
        raise DiqError("the evaluation has no averaged benchmark (category S or C) to take validation items for\n"
                       "  fix: give a task category S or C, or list scoring.validation.sources by hand")
    return out


def _source_docs(src: dict) -> tuple[list[dict], dict[str, str]]:
    kind = src.get("kind")
    if kind == "pubmedqa_pqal_train":
        docs = mcq.pubmedqa_split("train")
        test_ids = set(json.loads((mcq.DATA / "pubmedqa_test_ground_truth.json").read_text(encoding="utf-8")))
        leak = [d["id"] for d in docs if d["id"].split(":", 1)[1] in test_ids]
        assert not leak, f"PubMedQA validation side overlaps the test split: {leak[:5]}"
        pqal = json.loads((mcq.DATA / "pubmedqa_pqal.json").read_text(encoding="utf-8"))
        return docs, {d["id"]: pqal[d["id"].split(":", 1)[1]]["LONG_ANSWER"] for d in docs}
    if kind == "local_file":
        loc = {k: v for k, v in src.items() if k in ("question_field", "options_field", "answer_field", "id_field",
                                                     "context_field")}
        try:
            docs = mcq.read_local_mcq(src["path"], **loc)
            if not src.get("reasoning_field"):
                return docs, {}
            rows = mcq.read_rows(src["path"])  # the reasoning of each item, where the file has one
            return docs, {d["id"]: str(r.get(src["reasoning_field"]) or "") for d, r in zip(docs, rows)}
        except mcq.MCQError as e:
            raise DiqError(f"validation source {src.get('name')!r}: {e}") from None
    if kind == "holdout":
        from diq.tasks import bundle

        spec = src["spec"]
        if spec.get("bundle"):
            b = spec["bundle"]
            docs = bundle.source_docs(b["path"], b["source"], b["holdout"], b["holdout_seed"], part="held")
        else:
            from diq.tasks.specs import _local_docs

            docs = bundle.split_holdout(_local_docs(spec), int(spec["local"].get("holdout", src["holdout"]) or 0),
                                        src["holdout_seed"])[1]
        return docs, {}
    if kind == "hub":
        from diq.engine.hub import load_dataset

        ds = load_dataset(src["hub_id"], src.get("hub_config"), src["split"],
                          "a local_file validation source (scoring.validation.sources) or hub_fixtures")
        proc = getattr(mcq, src["process_docs"])
        return [dict(d) for d in proc(ds)], {}
    raise DiqError(f"validation source {src.get('name')!r}: unknown kind {kind!r}; choose pubmedqa_pqal_train, "
                   f"local_file, hub or holdout")


def build_validation(cfg: DictConfig, seed: int, eval_cfg=None, plan=None) -> tuple[list[dict], dict]:
    """Return (records, info). ``cfg`` is ``scoring.validation``: ``per_task`` (default k) and ``sources``
    (``auto`` = follow the evaluation, or a list, each with ``name``, ``kind`` and an optional ``per_task``).
    ``plan``: the run's ``EvalPlan`` (its task specs); a run draws through ``EvalPlan.validation``, once."""
    raw = cfg.sources
    if isinstance(raw, str):
        if raw != "auto":
            raise DiqError(f"scoring.validation.sources={raw!r}; use auto (follow the evaluation) or a list of sources")
        if eval_cfg is None:
            raise DiqError("scoring.validation.sources=auto needs the run's eval config")
        sources = auto_sources(eval_cfg, plan)
    else:
        sources = OmegaConf.to_container(raw, resolve=True)
    if not sources:
        raise DiqError("scoring.validation.sources is empty\n  fix: use auto, or list at least one benchmark's "
                       "train/dev source")
    per_task = cfg.per_task
    if isinstance(per_task, bool) or not isinstance(per_task, int) or per_task < 1:
        raise DiqError(f"scoring.validation.per_task={per_task!r}: use a positive integer (items per target benchmark)")
    out, info = [], {"tasks": {}, "per_task": {}, "kinds": {}}
    for src in sources:
        k = int(src.get("per_task") or per_task)
        docs, reasoning = _source_docs(src)
        if len(docs) < k:
            extra = " (held out of the benchmark: raise eval.holdout)" if src.get("kind") == "holdout" else ""
            raise DiqError(f"validation source {src['name']!r} has {len(docs)} items, fewer than per_task={k}{extra}\n"
                           f"  fix: lower scoring.validation.per_task or add items")
        rng = random.Random(f"{cfg.get('seed', seed)}:{src['name']}")
        chosen = sorted(rng.sample(range(len(docs)), k))
        recs = [_as_record(docs[i], src["name"], reasoning.get(docs[i]["id"], "")) for i in chosen]
        out.extend(recs)
        info["tasks"][src["name"]] = [r["id"] for r in recs]
        info["per_task"][src["name"]] = len(recs)
        info["kinds"][src["name"]] = src.get("kind")
    info["n"] = len(out)
    info["hash"] = sha256_obj([{k: r[k] for k in ("id", "task", "question", "reasoning", "response")} for r in out])
    return out, info


def decontaminated(cfg: DictConfig, decontam, plan=None) -> tuple[list[dict], dict, dict | None]:
    """The run's validation set, checked against every scored benchmark item (``decontam`` = (mode, docs, n) or
    None). Returns (records, info, decontamination summary or None). With ``drop``, a flagged item is an error:
    dropping it would silently shrink the validation set below what was asked for."""
    recs, info = plan.validation(cfg.scoring.validation, int(cfg.seed)) if plan is not None else \
        build_validation(cfg.scoring.validation, int(cfg.seed), cfg.eval)
    if decontam is None:
        return recs, info, None
    from diq.tasks import decontam as dc

    mode, docs, n = decontam
    rep = dc.check(recs, docs, n)
    if rep.ids and mode == "drop":
        short = {t: (len(ids), sum(i not in rep.ids for i in ids)) for t, ids in info["tasks"].items()}
        raise DiqError(
            "decontamination leaves fewer validation items than asked for: " + ", ".join(
                f"{t}: {b} of {a}" for t, (a, b) in short.items() if b < a) +
            f" (flagged: {[x['id'] + ' ~ ' + x['doc'] for x in rep.flagged][:6]})\n"
            "  fix: the validation items overlap scored benchmark items; take them from a split that "
            "does not, or set decontaminate=warn to keep them knowingly")
    dc.apply(mode, "validation", recs, rep)  # warn: says so; fail: raises
    return recs, info, rep.summary()

"""Decontamination: training and validation samples against the questions of every evaluation benchmark.

Three checks, per sample, on text folded with Unicode NFKC and case-folded ("ﬁxation" = "fixation"): an exact
match of the normalised question (punctuation and whitespace collapsed); word n-gram overlap (default n = 13, the
GPT-3 / lm-eval convention) between the sample's whole text (question, reasoning, response) and the benchmark's
questions (with context); and, for benchmark questions shorter than n words (most MedMCQA questions), containment of
the whole normalised question in the sample's text, when it has at least ``SHORT_MIN_WORDS`` words and
``SHORT_MIN_CHARS`` characters. Scaffolding is not content: n-grams shared by at least half of a benchmark's items (an
instruction sentence every PubMedQA item carries) and short questions that recur across its items are left out.
``decontaminate: warn | drop | fail``. ``drop`` removes contaminated pool samples before selection (so the
budget is still met from clean data) and contaminated validation items before scoring.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field

from omegaconf import DictConfig

from diq.errors import DiqError

_WORD = re.compile(r"\w+")
# a short question counts when it has at least this many words and characters (normalised, spaces included):
# "treatment of pemphigus" does, "drug of choice" does not. [choice] measured: no flag on the bundled pool.
SHORT_MIN_WORDS = 3
SHORT_MIN_CHARS = 18

log = logging.getLogger(__name__)


def words(text: str) -> list[str]:
    """Word tokens after NFKC folding and case folding (ligatures, full-width forms and case unified)."""
    return [w for w in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()) if w != "_"]


def normalize(text: str) -> str:
    return " ".join(words(text))


def ngrams(text: str, n: int) -> set[int]:
    w = words(text)
    return {hash(" ".join(w[i: i + n])) for i in range(len(w) - n + 1)}


def _strip_template(docs: list[dict], n: int) -> set[int]:
    """n-grams shared by at least half of a task's items are scaffolding (instructions, option letters, chat
    markup), not content: they are left out of the index."""
    if len(docs) < 4:
        return set()
    counts: dict[int, int] = {}
    for d in docs:
        for g in ngrams(d["content"], n):
            counts[g] = counts.get(g, 0) + 1
    return {g for g, c in counts.items() if c >= len(docs) / 2}


def benchmark_docs(eval_cfg: DictConfig, plan=None) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """The scored items of every benchmark in the run that can be read here, as content without prompt
    scaffolding: ``{id, question, content}``. Bundle, local and packaged tasks always; lm-eval hub tasks when their
    data can be loaded (or hub fixtures are set), otherwise listed as skipped with the reason. ``plan``: the run's
    ``EvalPlan`` (its specs and scored documents, read once)."""
    from diq.tasks import mcq
    from diq.tasks.specs import build_task, scored_docs, task_manager, task_specs

    docs, skipped = {}, {}
    specs = plan.specs if plan is not None else task_specs(eval_cfg)
    for spec in specs:
        name = spec["name"]
        ours = plan.docs[name] if plan is not None else scored_docs(spec, int(eval_cfg.get("holdout", 0) or 0),
                                                                    int(eval_cfg.get("holdout_seed", 0)))
        if ours is None and name.startswith("pubmedqa_pqal"):
            ours = mcq.pubmedqa_split("test")
        if ours is not None:
            docs[name] = [{"id": d["id"], "question": d["question"], "content": mcq.content_text(d)} for d in ours]
            continue
        try:
            from lm_eval.tasks import get_task_dict

            tm = task_manager([spec])
            task = next(iter(get_task_dict([build_task(spec, eval_cfg, tm)], tm).values()))
            ds = list(task.eval_docs)
            if ds and {"question", "options", "letters"} <= set(ds[0]):
                docs[name] = [{"id": f"{name}:{i}", "question": d["question"], "content": mcq.content_text(d)}
                              for i, d in enumerate(ds)]
                continue
            query = task.config.doc_to_decontamination_query if task.config.should_decontaminate else None
            rows = []
            for i, d in enumerate(ds):
                text = task.doc_to_text(d)
                q = task.doc_to_decontamination_query(d) if query else text
                rows.append({"id": f"{name}:{i}", "question": str(q), "content": str(text), "templated": True})
            docs[name] = rows
        except Exception as e:  # noqa: BLE001 - offline hub tasks cannot be read here
            skipped[name] = f"{type(e).__name__}: {str(e)[:160]}"
    return docs, skipped


@dataclass
class Report:
    n_checked: int = 0
    exact: list[dict] = field(default_factory=list)
    ngram: list[dict] = field(default_factory=list)
    short: list[dict] = field(default_factory=list)

    @property
    def flagged(self) -> list[dict]:
        return self.exact + self.ngram + self.short

    @property
    def ids(self) -> set[str]:
        return {x["id"] for x in self.flagged}

    def summary(self, limit: int = 5) -> dict:
        return {"n_checked": self.n_checked, "n_exact": len(self.exact), "n_ngram": len(self.ngram),
                "n_short": len(self.short), "n_contaminated": len(self.ids), "flagged": self.flagged,
                "examples": self.flagged[:limit]}


def check(samples: list[dict], docs: dict[str, list[dict]], n: int = 13) -> Report:
    """Flag samples whose question equals a benchmark item's (normalised) or whose text shares a word n-gram with
    a benchmark item's content. Validation items are compared by their content (question, context, options and
    reasoning), never by the prompt they are wrapped in."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 4:
        raise DiqError(f"decontam_ngram={n!r}: use an integer ≥ 4 (13 is the GPT-3 / lm-eval convention); "
                       f"short n-grams flag ordinary phrases")
    exact_index: dict[str, tuple[str, str]] = {}
    gram_index: dict[int, tuple[str, str]] = {}
    short_index: dict[tuple[str, ...], tuple[str, str]] = {}
    docs = {t: [{**d, "content": d.get("content") or f"{d.get('context', '')} {d['question']}"} for d in ds]
            for t, ds in docs.items()}
    for task, ds in docs.items():
        scaffold = _strip_template(ds, n)
        short: dict[tuple[str, ...], list[str]] = {}
        for d in ds:
            if not d.get("templated") or d["question"] != d["content"]:
                exact_index.setdefault(normalize(d["question"]), (task, d["id"]))
                q = tuple(words(d["question"]))
                if SHORT_MIN_WORDS <= len(q) < n and len(" ".join(q)) >= SHORT_MIN_CHARS:
                    short.setdefault(q, []).append(d["id"])
            for g in ngrams(d["content"], n):
                if g not in scaffold:
                    gram_index.setdefault(g, (task, d["id"]))
        for q, ids in short.items():
            if len(ids) == 1 or len(ds) < 4:  # a short question repeated across a benchmark's items is scaffolding
                short_index.setdefault(q, (task, ids[0]))
    lengths = sorted({len(q) for q in short_index})
    rep = Report(n_checked=len(samples))
    for s in samples:
        key = normalize(s.get("raw_question") or s["question"])
        if key and key in exact_index:
            task, did = exact_index[key]
            rep.exact.append({"id": s["id"], "task": task, "doc": did, "kind": "exact question"})
            continue
        text = f"{s['content']} {s.get('reasoning', '')}" if s.get("content") else \
            f"{s['question']} {s.get('reasoning', '')} {s['response']}"
        hits = [g for g in ngrams(text, n) if g in gram_index]
        if hits:
            task, did = gram_index[hits[0]]
            rep.ngram.append({"id": s["id"], "task": task, "doc": did, "kind": f"{n}-gram", "n_overlap": len(hits)})
            continue
        if lengths:
            w = words(text)
            hit = next((short_index[tuple(w[i: i + k])] for k in lengths for i in range(len(w) - k + 1)
                        if tuple(w[i: i + k]) in short_index), None)
            if hit:
                rep.short.append({"id": s["id"], "task": hit[0], "doc": hit[1], "kind": "short question contained"})
    return rep


def apply(mode: str, what: str, samples: list[dict], rep: Report) -> list[dict]:
    if mode not in ("warn", "drop", "fail", "off"):
        raise DiqError(f"decontaminate={mode!r}; choose warn, drop, fail or off")
    if not rep.ids or mode in ("warn", "off"):
        if rep.ids:
            log.warning(f"{len(rep.ids)} {what} sample(s) overlap evaluation benchmarks "
                        f"(decontaminate=warn), e.g. {rep.flagged[:3]}")
        return samples
    if mode == "fail":
        raise DiqError(f"{len(rep.ids)} {what} sample(s) overlap evaluation benchmarks, e.g. "
                       f"{rep.flagged[:3]}\n  fix: set decontaminate=drop to remove them, or clean the data")
    kept = [s for s in samples if s["id"] not in rep.ids]
    if not kept:
        raise DiqError(f"decontaminate=drop removed all {len(samples)} {what} sample(s): every one overlaps an "
                       f"evaluation benchmark, e.g. {rep.flagged[:3]}\n  fix: use data that is not "
                       f"copied from the benchmarks, or check the n-gram size (decontam_ngram)")
    log.info(f"decontaminate=drop: removed {len(samples) - len(kept)} {what} sample(s)")
    return kept

"""Decontamination: training and validation samples against the questions of every evaluation benchmark.

Two checks, per sample: an exact match of the normalised question (lower case, punctuation and whitespace
collapsed), and word n-gram overlap (default n = 13, the GPT-3 / lm-eval convention) between the sample's
whole text (question, reasoning, response) and the benchmark's questions (with context).
``decontaminate: warn | drop | fail``. ``drop`` removes contaminated pool samples before selection (so the
budget is still met from clean data) and contaminated validation items before scoring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from .errors import DiqError

_WORD = re.compile(r"[a-z0-9]+")


def normalize(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def ngrams(text: str, n: int) -> set[int]:
    w = _WORD.findall(text.lower())
    return {hash(" ".join(w[i: i + n])) for i in range(len(w) - n + 1)}


def benchmark_docs(eval_cfg: DictConfig) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Questions of every benchmark in the run that can be read here: packaged and local tasks always; lm-eval
    hub tasks when their data can be loaded (otherwise listed as skipped, with the reason)."""
    from .evaluate import PACKAGED
    from .tasks import mcq

    docs, skipped = {}, {}
    for spec in OmegaConf.to_container(eval_cfg.tasks, resolve=True):
        name = spec["name"]
        if spec.get("local"):
            loc = {k: v for k, v in spec["local"].items() if k not in ("mode", "path")}
            docs[name] = mcq.read_local_mcq(spec["local"]["path"], **loc)
        elif name.startswith("pubmedqa"):
            docs[name] = mcq.pubmedqa_split("test")
        else:
            try:
                from lm_eval.tasks import TaskManager, get_task_dict

                tm = TaskManager(include_path=str(mcq.DATA.parent / "tasks"), include_defaults=name not in PACKAGED)
                task = get_task_dict([name], tm)[name]
                ds = task.test_docs() if task.has_test_docs() else task.validation_docs()
                docs[name] = [{"id": f"{name}:{i}", "question": task.doc_to_text(d), "context": ""}
                              for i, d in enumerate(ds)]
            except Exception as e:  # noqa: BLE001 - offline hub tasks cannot be read here
                skipped[name] = f"{type(e).__name__}: {str(e)[:160]}"
    return docs, skipped


@dataclass
class Report:
    n_checked: int = 0
    exact: list[dict] = field(default_factory=list)
    ngram: list[dict] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return {x["id"] for x in self.exact} | {x["id"] for x in self.ngram}

    def summary(self, limit: int = 5) -> dict:
        return {"n_checked": self.n_checked, "n_exact": len(self.exact), "n_ngram": len(self.ngram),
                "n_contaminated": len(self.ids), "examples": (self.exact + self.ngram)[:limit]}


def check(samples: list[dict], docs: dict[str, list[dict]], n: int = 13) -> Report:
    exact_index: dict[str, tuple[str, str]] = {}
    gram_index: dict[int, tuple[str, str]] = {}
    for task, ds in docs.items():
        for d in ds:
            q = d["question"]
            exact_index.setdefault(normalize(q), (task, d["id"]))
            for g in ngrams(f"{d.get('context', '')} {q}", n):
                gram_index.setdefault(g, (task, d["id"]))
    rep = Report(n_checked=len(samples))
    for s in samples:
        key = normalize(s["question"])
        if key in exact_index:
            task, did = exact_index[key]
            rep.exact.append({"id": s["id"], "task": task, "doc": did, "kind": "exact question"})
            continue
        text = f"{s['question']} {s.get('reasoning', '')} {s['response']}"
        hits = [g for g in ngrams(text, n) if g in gram_index]
        if hits:
            task, did = gram_index[hits[0]]
            rep.ngram.append({"id": s["id"], "task": task, "doc": did, "kind": f"{n}-gram", "n_overlap": len(hits)})
    return rep


def apply(mode: str, what: str, samples: list[dict], rep: Report) -> list[dict]:
    if mode not in ("warn", "drop", "fail", "off"):
        raise DiqError(f"decontaminate={mode!r}; choose warn, drop, fail or off")
    if not rep.ids or mode in ("warn", "off"):
        if rep.ids:
            print(f"[diq] WARNING: {len(rep.ids)} {what} sample(s) overlap evaluation benchmarks "
                  f"(decontaminate=warn), e.g. {(rep.exact + rep.ngram)[:3]}", flush=True)
        return samples
    if mode == "fail":
        raise DiqError(f"{len(rep.ids)} {what} sample(s) overlap evaluation benchmarks, e.g. "
                       f"{(rep.exact + rep.ngram)[:3]}\n  fix: set decontaminate=drop to remove them, or clean the data")
    kept = [s for s in samples if s["id"] not in rep.ids]
    print(f"[diq] decontaminate=drop: removed {len(samples) - len(kept)} {what} sample(s)", flush=True)
    return kept

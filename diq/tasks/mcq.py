"""Document loaders, prompts and answer extraction shared by diq's lm-eval tasks.

Every task normalises its documents to ``{"id", "question", "context", "options": [...], "letters": [...],
"answer": int}`` so one prompt builder and one extractor serve PubMedQA, MedQA, MedMCQA and local files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
LETTERS = "ABCDEFGHIJ"
COT_INSTRUCTION = ('Think through the problem step by step, then end your reply with "The answer is X", '
                   "where X is the letter of the correct option.")


# --------------------------------------------------------------------------- loaders
def pubmedqa_split(split: str) -> list[dict]:
    """PubMedQA PQA-L from the bundled files. ``test`` = the official 500-item test split,
    ``train`` = the other 500 (the only side validation items may come from)."""
    pqal = json.loads((DATA / "pubmedqa_pqal.json").read_text(encoding="utf-8"))
    test_ids = set(json.loads((DATA / "pubmedqa_test_ground_truth.json").read_text(encoding="utf-8")))
    keep = (lambda k: k in test_ids) if split == "test" else (lambda k: k not in test_ids)
    out = []
    for pmid, r in pqal.items():
        if keep(pmid):
            out.append({"id": f"pubmedqa:{pmid}", "question": r["QUESTION"], "context": "\n".join(r["CONTEXTS"]),
                        "options": ["yes", "no", "maybe"], "letters": ["A", "B", "C"],
                        "answer": ["yes", "no", "maybe"].index(r["final_decision"])})
    return out


def load_pubmedqa_test(**_kwargs):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(pubmedqa_split("test"))})


def read_local_mcq(path: str, question_field: str = "question", options_field: str = "options",
                   answer_field: str = "answer", id_field: str | None = None, context_field: str | None = None) -> list[dict]:
    """A local benchmark file (.json list or .jsonl). ``options`` is a list or a letter→text dict; ``answer`` a
    letter, an index or the option text."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"benchmark file not found: {p} (eval task 'path')")
    text = p.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()] if p.suffix == ".jsonl" else json.loads(text)
    out = []
    for i, r in enumerate(rows, 1):
        for f in (question_field, options_field, answer_field):
            if f not in r:
                raise KeyError(f"{p}: record {i} has no field {f!r}; set the task's *_field keys to its column names")
        opts = r[options_field]
        if isinstance(opts, dict):
            letters, options = list(opts.keys()), [str(v) for v in opts.values()]
        else:
            options, letters = [str(o) for o in opts], list(LETTERS[: len(opts)])
        ans = r[answer_field]
        if isinstance(ans, int):
            idx = ans
        elif str(ans) in letters:
            idx = letters.index(str(ans))
        elif str(ans) in options:
            idx = options.index(str(ans))
        else:
            raise ValueError(f"{p}: record {i}: answer {ans!r} is neither an option letter, an index nor an option text")
        out.append({"id": str(r[id_field]) if id_field else f"{p.stem}:{i}", "question": str(r[question_field]),
                    "context": str(r.get(context_field, "")) if context_field else "",
                    "options": options, "letters": letters, "answer": idx})
    return out


def load_local_mcq(path: str, question_field: str = "question", options_field: str = "options",
                   answer_field: str = "answer", id_field: str | None = None, context_field: str | None = None, **_kw):
    import datasets

    docs = read_local_mcq(path, question_field, options_field, answer_field, id_field, context_field)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def process_medqa(dataset):
    """GBaker/MedQA-USMLE-4-options-hf → the common schema."""
    return dataset.map(lambda d: {"id": str(d.get("id", "")), "question": d["sent1"], "context": "",
                                  "options": [d[f"ending{i}"] for i in range(4)], "letters": list("ABCD"),
                                  "answer": int(d["label"])})


def process_medmcqa(dataset):
    """openlifescienceai/medmcqa → the common schema (its validation split is the scored one)."""
    return dataset.map(lambda d: {"id": str(d["id"]), "question": d["question"], "context": "",
                                  "options": [d["opa"], d["opb"], d["opc"], d["opd"]], "letters": list("ABCD"),
                                  "answer": int(d["cop"])})


# --------------------------------------------------------------------------- prompts
def _options_block(doc) -> str:
    return "\n".join(f"{l}. {o}" for l, o in zip(doc["letters"], doc["options"]))


def mc_text(doc) -> str:
    ctx = f"Abstract: {doc['context']}\n" if doc.get("context") else ""
    return f"{ctx}Question: {doc['question']}\n{_options_block(doc)}\nAnswer:"


def mc_choices(doc) -> list[str]:
    return list(doc["letters"])


def cot_text(doc) -> str:
    ctx = f"Context: {doc['context']}\n\n" if doc.get("context") else ""
    return f"{ctx}Question: {doc['question']}\n\nOptions:\n{_options_block(doc)}\n\n{COT_INSTRUCTION}"


def target_letter(doc) -> str:
    return doc["letters"][doc["answer"]]


def target_index(doc) -> int:
    return int(doc["answer"])


# --------------------------------------------------------------------------- answer extraction
def extract_letter(text: str, letters: list[str], options: list[str]) -> str:
    """"The answer is X" → an option label in the final-response section → an option text (whole words)."""
    if not isinstance(text, str):
        return "[invalid]"
    cls = "".join(letters)
    m = re.findall(rf"[Tt]he (?:correct |final )?answer is:?\s*\**\(?([{cls}])\b", text)
    if m:
        return m[-1]
    tail = text.split("## Final Response")[-1]
    # a bare letter only where it reads as an option label: "(B)", "B)", "B.", "**B**" or alone on a line
    m = re.findall(rf"(?:\(([{cls}])\)|(?:^|\s|\*)([{cls}])[).:*](?=\s|$)|^\s*([{cls}])\s*$)", tail, flags=re.M)
    if m:
        return next(x for x in m[-1] if x)
    low = tail.lower()
    hits = []
    for l, o in zip(letters, options):
        found = [x.start() for x in re.finditer(rf"\b{re.escape(o.lower())}\b", low)] if o else []
        if found:
            hits.append((found[-1], l))
    if hits:
        return max(hits)[1]
    return "[invalid]"


def extract_filter(resps, docs):
    return [[extract_letter(r, d["letters"], d["options"]) for r in rs] for rs, d in zip(resps, docs)]

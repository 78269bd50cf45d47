"""Document loaders, prompts and answer extraction shared by diq's lm-eval tasks.

Every task normalises its documents to ``{"id", "question", "context", "options": [...], "letters": [...],
"answer": int}`` so one prompt builder and one extractor serve PubMedQA, MedQA, MedMCQA and local files.
"""

from __future__ import annotations

import json
from pathlib import Path

from diq import DATA

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


def _fail(where: str, msg: str, fix: str) -> None:
    raise MCQError(f"{where}: {msg}\n  fix: {fix}")


class MCQError(ValueError):
    """A benchmark item that cannot be scored unambiguously; the message names the file, the item and the field."""


def normalize_item(r: dict, where: str, question_field: str = "question", options_field: str = "options",
                   answer_field: str = "answer", context_field: str | None = None) -> dict:
    """One raw MCQ item → ``{question, context, options, letters, answer}``, validated completely: a text question,
    ≥ 2 distinct text options (a list, or a letter → text object), and an answer that resolves to exactly one
    option by one known encoding (an option letter, a 0-based integer index, or the exact text of one option)."""
    if not isinstance(r, dict):
        _fail(where, f"expected an object, got {type(r).__name__}", "make every item a JSON object")
    for f in (question_field, options_field, answer_field):
        if f not in r:
            have = ", ".join(sorted(map(str, r))[:12])
            _fail(where, f"no field {f!r} (it has: {have})", "set the task's question_field / options_field / "
                  "answer_field to the file's column names")
    q = r[question_field]
    if not isinstance(q, str) or not q.strip():
        _fail(where, f"field {question_field!r} must be non-empty text, got {q!r:.60}", "give every item a question")
    opts = r[options_field]
    if isinstance(opts, dict):
        letters, options = [str(k) for k in opts], list(opts.values())
        bad = [k for k in letters if len(k) != 1 or k not in LETTERS]
        if bad:
            _fail(where, f"field {options_field!r}: option keys {bad} are not letters A-J",
                  "key options by their letters {\"A\": ..., \"B\": ...} or give a list")
        if letters != list(LETTERS[: len(letters)]):
            _fail(where, f"field {options_field!r}: option letters {letters} are not A, B, C, ... in order",
                  "list the options in letter order, starting at A")
    elif isinstance(opts, list):
        options, letters = opts, list(LETTERS[: len(opts)])
    else:
        _fail(where, f"field {options_field!r} must be a list or a letter → text object, got {type(opts).__name__} "
              f"{opts!r:.60}", "give the options as [\"yes\", \"no\"] or {\"A\": \"yes\", \"B\": \"no\"}")
    if not 2 <= len(options) <= len(LETTERS):
        _fail(where, f"field {options_field!r} has {len(options)} option(s); a multiple-choice item needs 2 to "
              f"{len(LETTERS)}", "fix or remove the item (one option makes every answer right)")
    if not all(isinstance(o, str) and o.strip() for o in options):
        _fail(where, f"field {options_field!r}: every option must be non-empty text, got {options!r:.80}",
              "write each option as text")
    # distinct = different text after whitespace normalisation; case counts (genotypes "Bb Bb" vs "BB Bb" are
    # different options in a real MMLU-Pro item)
    seen: dict[str, str] = {}
    for l, o in zip(letters, options):
        k = " ".join(o.split())
        if k in seen:
            _fail(where, f"field {options_field!r} repeats an option: {seen[k]} and {l} are both {o.strip()!r:.60}",
                  "make the options distinct (only spacing is ignored: options that differ in case are distinct)")
        seen[k] = l
    ans = r[answer_field]
    if isinstance(ans, bool) or ans is None or isinstance(ans, float):
        _fail(where, f"field {answer_field!r} = {ans!r} is not an option letter, a 0-based index or an option's text",
              f"use one of {letters}")
    if isinstance(ans, int):
        if not 0 <= ans < len(options):
            _fail(where, f"field {answer_field!r} = {ans} is outside the {len(options)} options (0-based index)",
                  f"use 0..{len(options) - 1} or a letter {letters}")
        idx = ans
    elif isinstance(ans, str) and ans.strip() in letters:
        idx = letters.index(ans.strip())
    elif isinstance(ans, str) and [o.strip() for o in options].count(ans.strip()) == 1:
        idx = [o.strip() for o in options].index(ans.strip())
    else:
        _fail(where, f"field {answer_field!r} = {ans!r:.60} is neither one of the option letters {letters}, a 0-based "
              f"index, nor the exact text of one option", "correct the answer")
    ctx = r.get(context_field, "") if context_field else ""
    if isinstance(ctx, list):
        ctx = "\n".join(map(str, ctx))
    return {"question": q, "context": str(ctx or ""), "options": [o.strip() for o in options], "letters": letters,
            "answer": idx}


def data_path(path: str | Path) -> Path:
    """A file path; ``pkg://diq/data/<rel>`` names a file shipped in the package (diq/data/<rel>)."""
    s = str(path)
    return DATA / s[len("pkg://diq/data/"):] if s.startswith("pkg://diq/data/") else Path(s).expanduser()


def read_rows(path: str | Path) -> list:
    """A .json list or a .jsonl file, with errors that name the file and the line."""
    p = data_path(path)
    if not p.exists():
        raise MCQError(f"benchmark file not found: {p}\n  fix: set the task's path to an existing .json/.jsonl file")
    if p.is_dir():
        raise MCQError(f"{p} is a directory\n  fix: point the task's path at a .json or .jsonl file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise MCQError(f"{p}: not UTF-8 text (byte {e.start})\n  fix: save the file as UTF-8") from None
    if p.suffix == ".jsonl":
        rows = []
        for ln, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise MCQError(f"{p}:{ln}: malformed JSON ({e.msg})\n  fix: one JSON object per line") from None
        return rows
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise MCQError(f"{p}:{e.lineno}: malformed JSON ({e.msg})\n  fix: repair the file") from None
    if not isinstance(rows, list):
        raise MCQError(f"{p}: expected a JSON list of items, got {type(rows).__name__}\n  fix: save the items as a "
                       f"list (or .jsonl); an object keyed by source is an evaluation bundle (eval=medical_bundle)")
    return rows


def read_local_mcq(path: str, question_field: str = "question", options_field: str = "options",
                   answer_field: str = "answer", id_field: str | None = None, context_field: str | None = None,
                   prefix_field: str | None = None) -> list[dict]:
    """A local benchmark file (.json list or .jsonl), validated item by item before anything is scored.
    ``options`` is a list or a letter→text dict; ``answer`` a letter, a 0-based index or the option text.
    Ids: ``id_field`` when given (must be unique), else ``<file stem>:<line>``."""
    p = data_path(path)
    rows = read_rows(p)
    if not rows:
        raise MCQError(f"{p}: the benchmark has no items\n  fix: add items")
    out, seen = [], {}
    for i, r in enumerate(rows, 1):
        where = f"{p}: item {i}"
        doc = normalize_item(r, where, question_field, options_field, answer_field, context_field)
        if id_field:
            if id_field not in r or r[id_field] in (None, ""):
                _fail(where, f"no id in field {id_field!r}", "give every item an id, or unset id_field")
            rid = str(r[id_field])
        else:
            rid = f"{p.stem}:{i}"
        if rid in seen:
            _fail(where, f"id {rid!r} repeats item {seen[rid]}", "make the ids unique")
        seen[rid] = i
        if prefix_field:  # the start of the reply each option is scored after (cloze mode's answer_prefix)
            if not isinstance(r.get(prefix_field), str):
                _fail(where, f"no text in field {prefix_field!r}", "give every item that field, or unset prefix_field")
            doc["prefix"] = r[prefix_field]
        out.append({"id": rid, **doc})
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


def question_text(doc) -> str:
    """The question alone (cloze with an answer prefix, in the chat template: the user turn)."""
    return f"{doc['context']}\n\n{doc['question']}" if doc.get("context") else doc["question"]


def cloze_text(doc) -> str:
    """Cloze scoring: the question alone; each option's text is scored as the continuation (``option_texts``)."""
    ctx = f"Abstract: {doc['context']}\n" if doc.get("context") else ""
    return f"{ctx}Question: {doc['question']}\nAnswer:"


def option_texts(doc) -> list[str]:
    return list(doc["options"])


def cot_text(doc) -> str:
    ctx = f"Context: {doc['context']}\n\n" if doc.get("context") else ""
    return f"{ctx}Question: {doc['question']}\n\nOptions:\n{_options_block(doc)}\n\n{COT_INSTRUCTION}"


def target_letter(doc) -> str:
    return doc["letters"][doc["answer"]]


def target_index(doc) -> int:
    return int(doc["answer"])


# --------------------------------------------------------------------------- HuatuoGPT-o1 prompts
HUATUO_PROMPT = "Please answer the following multiple-choice question:\n{question}\n{options}"
# HuatuoGPT-o1's eval.py --strict_prompt, verbatim (its first sentence is repeated, with "questions", in the original)
HUATUO_STRICT_PROMPT = ("Please answer the following multiple-choice questions. Please answer the following "
                        "multiple-choice questions, ensuring your response concludes with the correct option in the "
                        "format: 'The answer is A.'.\n{question}\n{options}")


def _raw_options_block(doc) -> str:
    """``A. text`` lines with the option texts as the file has them (HuatuoGPT-o1 does not strip them)."""
    return "\n".join(f"{l}. {o}" for l, o in zip(doc["letters"], doc.get("options_raw") or doc["options"]))


def huatuo_text(doc) -> str:
    """HuatuoGPT-o1's evaluation prompt (question, then ``A. text`` lines), so numbers sit beside its tables."""
    return HUATUO_PROMPT.format(question=doc["question"], options=_raw_options_block(doc))


def huatuo_strict_text(doc) -> str:
    return HUATUO_STRICT_PROMPT.format(question=doc["question"], options=_raw_options_block(doc))


PROMPTS = {"diq": cot_text, "huatuo": huatuo_text, "huatuo_strict": huatuo_strict_text}


# answer extraction lives in diq/tasks/answers.py; the names stay here for the task YAMLs (`!function mcq.…`).
from diq.tasks.answers import (  # noqa: E402, F401 - an absolute import: lm-eval loads this file as module `mcq`
    HUATUO_RULES,
    MATCHERS,
    RULES,
    extract_filter,
    extract_letter,
    match_answer,
    match_huatuo,
)


def process_mmlu_pro_health(dataset):
    """TIGER-Lab/MMLU-Pro (health category) → the common schema; its validation split is the train/dev side."""
    ds = dataset.filter(lambda d: d["category"] == "health")
    return ds.map(lambda d: {"id": f"mmlu_pro:{d['question_id']}", "question": d["question"], "context": "",
                             "options": [str(o) for o in d["options"]], "letters": list(LETTERS[: len(d["options"])]),
                             "answer": int(d["answer_index"])})


def content_text(doc) -> str:
    """The content of an item without any prompt scaffolding: context and question. Option texts are left out,
    as in lm-eval's decontamination queries: lists of short standard options ("yes no maybe", drug classes) recur
    across unrelated items."""
    return " ".join([doc.get("context") or "", doc["question"]]).strip()

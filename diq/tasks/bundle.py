"""The medical evaluation bundle of this literature (HuatuoGPT-o1's ``eval_data.json``, m1's with MedXpertQA).

One JSON object keyed by source name (``MedQA_USLME_test``, ``MedMCQA_validation``, ``PubMedQA_test``,
``MMLU-Pro_Medical_test``, ``GPQA_Medical_test``, ``Medbullets_op4``, ``Medbullets_op5``, ``MedXpertQA``, ``NEJM``,
``Lancet``); each value a list of ``{question, options: {A: text, ...}, answer_idx: letter, ...}``. Every item is
validated before anything is scored. Sources without a train/dev split give up ``holdout`` items (a seeded choice
that depends only on the file and the seed, never on the run) to the validation set; those items are not scored.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from diq import DATA
from diq.tasks import mcq


def resolve(path: str | None, hub: dict | None = None) -> Path:
    """The bundle file: a local path, or a file in a hub dataset repo (``hub: {repo_id, filename}``)."""
    from diq.errors import DiqError

    if hub and hub.get("repo_id"):
        from diq.engine.hub import ensure_hub_reachable

        ensure_hub_reachable(hub["repo_id"], "dataset", "a local copy: eval.path=/path/to/eval_data.json")
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(hub["repo_id"], hub["filename"], repo_type="dataset",
                                    revision=hub.get("revision")))
    if not path:
        raise DiqError("eval=medical_bundle needs the bundle file\n  fix: pass eval.path=/path/to/eval_data.json "
                       "(HuatuoGPT-o1's evaluation file) or eval.hub.repo_id=<a hub mirror> eval.hub.filename=<file>")
    if path.startswith("pkg://diq/data/"):
        return DATA / path[len("pkg://diq/data/"):]
    return Path(path).expanduser()


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> dict[str, list[dict]]:
    p = Path(path)
    if not p.exists():
        raise mcq.MCQError(f"evaluation bundle not found: {p}\n  fix: set eval.path to HuatuoGPT-o1's eval_data.json "
                           f"(or a file in its format)")
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise mcq.MCQError(f"{p}: not UTF-8 text\n  fix: save the bundle as UTF-8") from None
    except json.JSONDecodeError as e:
        raise mcq.MCQError(f"{p}:{e.lineno}: malformed JSON ({e.msg})\n  fix: repair the file") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise mcq.MCQError(f"{p}: an evaluation bundle is one JSON object keyed by source name, each value a list of "
                           f"items\n  fix: for a plain list of items use eval=local_file")
    out = {}
    for src, items in data.items():
        docs = []
        for i, r in enumerate(items):
            doc = mcq.normalize_item(r, f"{p}: source {src!r} item {i + 1}", "question", "options", "answer_idx")
            raw = r["options"].values() if isinstance(r["options"], dict) else r["options"]
            docs.append({"id": f"{src}:{i}", **doc, "options_raw": [str(o) for o in raw]})
        out[src] = docs
    return out


def read(path: str | Path) -> dict[str, list[dict]]:
    p = Path(path)
    return _read(str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)


def split_holdout(docs: list[dict], k: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(scored, held out): ``k`` items chosen by a seeded draw over the source's items."""
    if k <= 0:
        return docs, []
    src = docs[0]["id"].rsplit(":", 1)[0] if docs else ""
    chosen = set(random.Random(f"holdout:{src}:{seed}").sample(range(len(docs)), min(k, len(docs))))
    return [d for i, d in enumerate(docs) if i not in chosen], [d for i, d in enumerate(docs) if i in chosen]


def source_docs(path: str, source: str, holdout: int = 0, holdout_seed: int = 0, part: str = "scored") -> list[dict]:
    docs = read(path)[source]
    scored, held = split_holdout(docs, holdout, holdout_seed)
    return scored if part == "scored" else held


def load_source(path: str, source: str, holdout: int = 0, holdout_seed: int = 0, **_kw):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(source_docs(path, source, holdout, holdout_seed))})

"""Load an SFT pool from a hub id or a local file into canonical records.

A canonical record is a dict with ``id, question, reasoning, response`` and optional ``options``
(letter → text) and ``answer``. Ids come from a configured field or, where the source has none, from a
content hash, so they are stable across machines and orderings.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from diq import DATA
from diq.artifacts import sha256_obj, sha256_text
from diq.errors import DiqError

CANONICAL = ("id", "question", "reasoning", "response", "options", "answer")
REQUIRED = ("question", "response")
PACKAGE_DATA = DATA


def resolve_path(path: str) -> Path:
    """``pkg://diq/data/x.json`` → the bundled file; anything else is a filesystem path."""
    if path.startswith("pkg://diq/data/"):
        return PACKAGE_DATA / path[len("pkg://diq/data/"):]
    return Path(os.path.expanduser(path))


def _read_local(path: Path, records_key: str | None, key: str = "pool", alt: str = "") -> list[dict]:
    if not path.exists():
        raise DiqError(
            f"{key} file not found: {path}\n  fix: set {key}.path to an existing .json/.jsonl/.parquet/.csv file "
            f"{alt or '(or pool=medical_o1_demo for the bundled 198 records)'}"
        )
    if path.is_dir():
        raise DiqError(f"{key}.path={path} is a directory\n  fix: point {key}.path at one .json/.jsonl/.parquet/.csv file")
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl", ".csv"):
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise DiqError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})\n  fix: save the file as UTF-8")\
                from None
    if suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DiqError(
                        f"{path}:{lineno}: malformed JSON line ({e.msg} at column {e.colno})\n"
                        f"  fix: make every non-empty line of the file one JSON object"
                    ) from None
                if not isinstance(row, dict):
                    raise DiqError(f"{path}:{lineno}: expected a JSON object per line, got {type(row).__name__}")
                rows.append(row)
        return rows
    if suffix == ".json":
        try:
            with open(path, encoding="utf-8-sig") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise DiqError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})\n"
                           f"  fix: repair the file, or save it as JSON Lines (.jsonl)") from None
        if records_key:
            if not isinstance(data, dict) or records_key not in data:
                raise DiqError(f"{path}: {key}.records_key={records_key!r} not found at the top level")
            data = data[records_key]
        if isinstance(data, dict):  # keyed by id, e.g. PubMedQA {pmid: record}
            lists = [k for k, v in data.items() if isinstance(v, list)]
            if not all(isinstance(v, dict) for v in data.values()):
                hint = f"{key}.records_key={lists[0]}" if lists else "a list of records"
                raise DiqError(f"{path}: a JSON object whose values are not all records (keys: "
                               f"{', '.join(list(data)[:6])})\n  fix: use {hint}, or an object keyed by id")
            return [{"__key__": k, **v} for k, v in data.items()]
        if not isinstance(data, list):
            raise DiqError(f"{path}: expected a JSON list of records (or an object keyed by id)")
        bad = next((i for i, r in enumerate(data, 1) if not isinstance(r, dict)), None)
        if bad is not None:
            raise DiqError(f"{path}: record {bad} is a {type(data[bad - 1]).__name__}, not an object with fields\n"
                           f"  fix: make every record a JSON object {{\"question\": ..., \"response\": ...}}")
        return data
    if suffix in (".parquet", ".csv"):
        import pandas as pd

        try:  # every column as text: integer ids stay '27' (not '27.0'), blank cells stay blank (not 'nan')
            df = pd.read_parquet(path) if suffix == ".parquet" else \
                pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many kinds for a corrupt file
            raise DiqError(f"{path}: cannot read this {suffix} file ({type(e).__name__}: {str(e)[:160]})\n"
                           f"  fix: check that the file is complete and really {suffix}") from None
        return df.to_dict(orient="records")
    raise DiqError(f"{path}: unsupported {key} file type {suffix!r}; use .json, .jsonl, .parquet or .csv")


def _read_hub(cfg: DictConfig) -> list[dict]:
    from diq.engine.hub import load_dataset

    try:
        ds = load_dataset(cfg.hub_id, cfg.get("hub_config"), cfg.get("split", "train"),
                          "pool=medical_o1_demo (bundled) or pool=local pool.path=/path/to/pool.jsonl")
    except DiqError:
        raise
    except Exception as e:  # noqa: BLE001 - wrap any hub/dataset failure with the fix
        raise DiqError(f"could not load pool {cfg.hub_id!r} (config {cfg.get('hub_config')!r}): {e}\n"
                       f"  fix: check the hub id / config / split, or use a local file (pool=local)") from None
    return [dict(r) for r in ds]


def _as_text(value: Any, field: str, src: str, row_no: int) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, float, bool)) and field in ("question", "response", "reasoning"):
        raise DiqError(f"{src}: record {row_no}: field {field!r} is {value!r}, a {type(value).__name__}, not text\n"
                       f"  fix: map pool.fields.{field} to a text column")
    if isinstance(value, (int, float, bool)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    raise DiqError(f"{src}: record {row_no}: field {field!r} must be text, got {type(value).__name__}\n"
                   f"  fix: map pool.fields.{field} to a text column")


def canonicalize(rows: list[dict], fields: dict, src: str, id_prefix: str = "") -> list[dict]:
    """Map raw rows to canonical records, checking every required field."""
    if not rows:
        raise DiqError(f"{src}: the pool is empty\n  fix: point pool.path at a file with at least one record")
    present = set(rows[0].keys())
    for name in REQUIRED:
        src_field = fields.get(name)
        if src_field is None or src_field not in present:
            hint = ", ".join(sorted(k for k in present if not k.startswith("__"))[:12])
            raise DiqError(
                f"{src}: required field {name!r} is mapped to {src_field!r}, which the records do not have "
                f"(they have: {hint})\n  fix: set pool.fields.{name}=<one of those columns>"
            )
    out, seen = [], {}
    for i, row in enumerate(rows, 1):
        rec: dict[str, Any] = {}
        for name in ("question", "reasoning", "response"):
            key = fields.get(name)
            if key is None:
                rec[name] = ""
                continue
            if key not in row:
                raise DiqError(f"{src}: record {i} has no field {key!r} (mapped as pool.fields.{name})\n"
                               f"  fix: make every record carry it, or change the mapping")
            rec[name] = _as_text(row[key], name, src, i)
        if not rec["question"].strip() or not rec["response"].strip():
            raise DiqError(f"{src}: record {i} has an empty question or response\n"
                           f"  fix: remove the record or map pool.fields to non-empty columns")
        opt_key, ans_key = fields.get("options"), fields.get("answer")
        opts = row.get(opt_key) if opt_key else None
        rec["options"] = {str(k): str(v) for k, v in opts.items()} if isinstance(opts, dict) else None
        ans = row.get(ans_key) if ans_key else None
        rec["answer"] = None if ans is None or (isinstance(ans, float) and math.isnan(ans)) else str(ans)
        id_key = fields.get("id")
        if id_key:
            if id_key not in row:
                raise DiqError(f"{src}: record {i} has no id field {id_key!r}\n"
                               f"  fix: set pool.fields.id=null to use content-hash ids")
            raw = row[id_key]
            if raw is None or (isinstance(raw, float) and math.isnan(raw)) or str(raw).strip() == "":
                raise DiqError(f"{src}: record {i} has a blank id in field {id_key!r}\n"
                               f"  fix: give every record an id, or set pool.fields.id=null to use content-hash ids")
            if isinstance(raw, float) and raw.is_integer():
                raw = int(raw)
            rid = f"{id_prefix}{raw}"
        else:
            rid = id_prefix + sha256_text("\x1f".join((rec["question"], rec["reasoning"], rec["response"])))[:16]
        if rid in seen:
            raise DiqError(f"{src}: duplicate id {rid!r} in records {seen[rid]} and {i}\n"
                           f"  fix: deduplicate the pool, or map pool.fields.id to a unique column "
                           f"(null = content hash)")
        seen[rid] = i
        out.append({"id": rid, **rec})
    return out


def load_pool(cfg: DictConfig) -> list[dict]:
    """Load the configured pool (``cfg`` is the ``pool`` config group)."""
    fields = OmegaConf.to_container(cfg.fields, resolve=True) if "fields" in cfg else {}
    if cfg.get("hub_id") and not cfg.get("path"):
        rows, src = _read_hub(cfg), f"hub:{cfg.hub_id}"
    else:
        if not cfg.get("path"):
            raise DiqError("pool.path is not set\n  fix: pass pool.path=/path/to/pool.jsonl (or pool.hub_id=...)")
        path = resolve_path(cfg.path)
        rows, src = _read_local(path, cfg.get("records_key")), str(path)
    if "__key__" in (rows[0] if rows else {}) and not fields.get("id"):
        fields["id"] = "__key__"
    recs = canonicalize(rows, fields, src, id_prefix=cfg.get("id_prefix") or "")
    limit = cfg.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise DiqError(f"pool.limit={limit!r}: use a positive integer (the first N records) or null for all")
        recs = recs[:limit]
    return recs


def pool_hash(records: list[dict]) -> str:
    return sha256_obj([{k: r.get(k) for k in CANONICAL} for r in records])

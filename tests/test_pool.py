"""Pool loading into canonical records, field mapping, stable ids and bad-input messages."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from diq.errors import DiqError
from diq.stages.pool.load import load_pool, pool_hash


def cfg(path, **fields):
    base = {"id": None, "question": "q", "reasoning": "r", "response": "a", "options": None, "answer": None}
    base.update(fields)
    return OmegaConf.create({"name": "t", "path": str(path), "hub_id": None, "fields": base, "limit": None})


ROWS = [{"q": f"question {i}", "r": f"because {i}", "a": f"answer {i}", "pid": f"p{i}"} for i in range(5)]


def test_bundled_demo_pool():
    from conftest import compose

    recs = load_pool(compose([]).pool)
    assert len(recs) == 198
    r = recs[0]
    assert set(r) == {"id", "question", "reasoning", "response", "options", "answer"}
    assert r["answer"] in r["options"] and len(r["id"]) == 16
    assert len({x["id"] for x in recs}) == 198
    assert pool_hash(recs) == pool_hash(load_pool(compose([]).pool))


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_formats_and_mapping(tmp_path, fmt):
    p = tmp_path / f"pool.{fmt}"
    if fmt == "jsonl":
        p.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    elif fmt == "json":
        p.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        pd.DataFrame(ROWS).to_csv(p, index=False)
    else:
        pd.DataFrame(ROWS).to_parquet(p)
    recs = load_pool(cfg(p, id="pid"))
    assert [r["id"] for r in recs] == [f"p{i}" for i in range(5)]
    assert recs[3]["question"] == "question 3" and recs[3]["reasoning"] == "because 3" and recs[3]["response"] == "answer 3"


def test_content_hash_ids_are_stable_and_order_independent(tmp_path):
    p1, p2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    p1.write_text("\n".join(json.dumps(r) for r in ROWS))
    p2.write_text("\n".join(json.dumps(r) for r in reversed(ROWS)))
    a, b = load_pool(cfg(p1)), load_pool(cfg(p2))
    assert {r["id"]: r["question"] for r in a} == {r["id"]: r["question"] for r in b}
    assert pool_hash(a) != pool_hash(b)  # order is part of the pool's identity


def test_json_keyed_by_id(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"x1": {"q": "a?", "a": "b"}, "x2": {"q": "c?", "a": "d"}}))
    recs = load_pool(cfg(p, reasoning=None))
    assert [r["id"] for r in recs] == ["x1", "x2"] and recs[0]["reasoning"] == ""


def test_missing_file(tmp_path):
    with pytest.raises(DiqError, match=r"pool file not found: .*nope.jsonl[\s\S]*fix: set pool.path"):
        load_pool(cfg(tmp_path / "nope.jsonl"))


def test_missing_field_suggests_mapping(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps({"prompt": "x", "completion": "y"}) for _ in range(2)))
    with pytest.raises(DiqError) as e:
        load_pool(cfg(p))
    msg = str(e.value)
    assert "required field 'question'" in msg and "completion, prompt" in msg and "pool.fields.question=" in msg


def test_malformed_jsonl_names_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n{not json\n")
    with pytest.raises(DiqError, match=r"bad.jsonl:3: malformed JSON line"):
        load_pool(cfg(p))


def test_empty_pool(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n\n")
    with pytest.raises(DiqError, match="the pool is empty"):
        load_pool(cfg(p))


def test_duplicate_ids(tmp_path):
    p = tmp_path / "dup.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in ROWS + ROWS[:1]))
    with pytest.raises(DiqError, match=r"duplicate id '[0-9a-f]+' in records 1 and 6"):
        load_pool(cfg(p))


def test_non_text_field(tmp_path):
    p = tmp_path / "nt.jsonl"
    p.write_text(json.dumps({"q": {"nested": 1}, "r": "", "a": "x"}))
    with pytest.raises(DiqError, match=r"record 1: field 'question' must be text, got dict"):
        load_pool(cfg(p))


def test_unreachable_hub_fails_fast(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    c = OmegaConf.create({"name": "hub", "hub_id": "FreedomIntelligence/medical-o1-reasoning-SFT", "hub_config": "en",
                          "split": "train", "path": None, "fields": {"question": "Question", "response": "Response"}})
    t = time.time()
    with pytest.raises(DiqError, match=r"pool=medical_o1_demo"):
        load_pool(c)
    assert time.time() - t < 10

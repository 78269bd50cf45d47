"""Difficulty sources: local judge (expected value over 1–5), OpenAI-compatible judge against a fake server
on 127.0.0.1 (logprobs, retries, unparseable replies, resume), the classifier CLI on a tiny backbone."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fake_openai import ChatHandler, logprob_choice, serve

from diq.errors import DiqError
from diq.stages.score.difficulty import PERSPECTIVES
from diq.stages.score.difficulty.judge import LocalJudge, OpenAIJudge, judge_records

RECS = [{"id": f"r{i}", "question": f"Question {i}: what causes fever?", "reasoning": "", "response": "infection"}
        for i in range(6)]


class FakeOpenAI(ChatHandler):
    mode = "logprobs"          # logprobs | text | garbage | fail_then_ok

    def reply(self, body):
        if self.mode == "fail_then_ok" and type(self).calls % 2 == 1:
            return 503, None
        rating = 1 + (len(body["messages"][0]["content"]) % 5)
        if self.mode == "garbage":
            return 200, {"message": {"content": "I refuse to rate."}}
        if self.mode == "logprobs":
            return 200, logprob_choice(rating, math.log(0.6), math.log(0.1))
        return 200, {"message": {"content": f"Rating: {rating}"}}


@pytest.fixture
def server():
    FakeOpenAI.mode = "logprobs"
    with serve(FakeOpenAI) as url:
        yield url


def test_openai_judge_expected_value_and_key_from_env(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "secret-xyz")
    j = OpenAIJudge(server, "judge-model", api_key_env="MY_JUDGE_KEY", backoff=0.01)
    res = judge_records(j, RECS, PERSPECTIVES, tmp_path / "ratings.jsonl")
    assert set(res) == set(PERSPECTIVES) and all(len(v) == 6 for v in res.values())
    # expected value with p(rating)=0.6/1.0 and 0.1 elsewhere: 0.6·r + 0.1·(15 − r)
    from diq.stages.score.difficulty.rubric import judge_prompt

    r = 1 + (len(judge_prompt(RECS[0], "overall")) % 5)
    assert res["overall"][0] == pytest.approx(0.6 * r + 0.1 * (15 - r))
    assert FakeOpenAI.auth[0] == "Bearer secret-xyz"
    assert "secret-xyz" not in (tmp_path / "ratings.jsonl").read_text()


def test_openai_judge_retries_then_succeeds(server, tmp_path):
    FakeOpenAI.mode = "fail_then_ok"
    j = OpenAIJudge(server, "m", backoff=0.01, logprobs=False)
    res = judge_records(j, RECS[:2], ["overall"], tmp_path / "r.jsonl")
    assert FakeOpenAI.calls == 4 and all(1 <= v <= 5 for v in res["overall"])


def test_unparseable_ratings_fail_clearly_and_keep_partial(server, tmp_path):
    part = tmp_path / "partial.jsonl"
    FakeOpenAI.mode = "text"
    j = OpenAIJudge(server, "m", backoff=0.01, max_retries=2, logprobs=False)
    judge_records(j, RECS[:3], ["overall"], part)
    assert len(part.read_text().splitlines()) == 3
    FakeOpenAI.mode = "garbage"
    with pytest.raises(DiqError, match=r"failed 3 times \(2 retries[\s\S]*last error: ValueError: no rating 1-5"
                                       r"[\s\S]*3 of 6 ratings are done \(0 in this run\), kept in [\s\S]*rerun the "
                                       r"same command; only the 3 missing"):
        judge_records(j, RECS, ["overall"], part)
    assert len(part.read_text().splitlines()) == 3  # nothing lost
    FakeOpenAI.mode, FakeOpenAI.calls = "text", 0
    res = judge_records(j, RECS, ["overall"], part)  # resumes: only the 3 missing records are asked
    assert FakeOpenAI.calls == 3 and len(res["overall"]) == 6


def test_endpoint_down(tmp_path):
    j = OpenAIJudge("http://127.0.0.1:9/v1", "m", backoff=0.01, max_retries=2, timeout=2)
    with pytest.raises(DiqError, match=r"judge endpoint http://127.0.0.1:9/v1/chat/completions failed 3 times"):
        judge_records(j, RECS[:1], ["overall"], tmp_path / "x.jsonl")


def test_local_judge_expected_value(tiny_path):
    j = LocalJudge(tiny_path, batch_size=2)
    v = j.rate(["Rate 1-5: easy?", "Rate 1-5: a much longer question about renal physiology?", "x"])
    assert len(v) == 3 and all(1.0 <= x <= 5.0 for x in v)
    assert len({round(x, 6) for x in v}) > 1  # not a constant


def test_classifier_cli_train_and_predict(tiny_path, tmp_path):
    from diq.stages.score.difficulty.__main__ import main

    labels = tmp_path / "labels.jsonl"
    pool = tmp_path / "pool.jsonl"
    rows = [{"id": f"q{i}", "question": "short" if i % 2 else "a long and complicated clinical vignette " * 5,
             "reasoning": "", "response": "ok"} for i in range(30)]
    pool.write_text("\n".join(json.dumps(r) for r in rows))
    with labels.open("w") as f:
        for i, r in enumerate(rows):
            for p in PERSPECTIVES:
                f.write(json.dumps({"id": r["id"], "perspective": p, "rating": 1 if i % 2 else 5}) + "\n")
    model_dir = tmp_path / "clf"
    assert main(["train", "--pool-path", str(pool), "--fields", "id=id", "--labels", str(labels), "--backbone",
                 tiny_path, "--epochs", "6", "--lr", "3e-3", "--out", str(model_dir), "--max-length", "64"]) == 0
    info = json.loads((model_dir / "diq_classifier.json").read_text())
    assert info["best_val_macro_f1"] > 0.5
    out = tmp_path / "pred.json"
    assert main(["predict", "--pool-path", str(pool), "--fields", "id=id", "--model", str(model_dir), "--out", str(out),
                 "--max-length", "64"]) == 0
    pred = json.loads(out.read_text())
    hard = np.mean([pred[f"q{i}"]["overall"] for i in range(0, 30, 2)])
    easy = np.mean([pred[f"q{i}"]["overall"] for i in range(1, 30, 2)])
    assert hard > easy + 1.0, (hard, easy)


def test_difficulty_cli_composes_pool_judge_and_recipe_from_conf(server, tiny_path, tmp_path):
    """diq.stages.score.difficulty takes diq.run's Hydra overrides: the judge from conf/judge (judge=openai …), the pool from
    conf/pool (pool=local pool.path=… pool.limit=…) and the classifier recipe from conf/scoring/difficulty; other
    groups are refused by name."""
    from diq.stages.score.difficulty.__main__ import main

    pool = tmp_path / "my pool, v2.jsonl"  # a path Hydra would split unless quoted
    pool.write_text("".join(json.dumps(r) + "\n" for r in RECS))
    labels = tmp_path / "labels.jsonl"
    assert main(["judge", "--pool-path", str(pool), "--out", str(labels), "judge=openai",
                 f"judge.base_url={server}", "judge.model_name=m", "judge.backoff=0.01", "pool.limit=5", "pool.fields.id=id"]) == 0
    rows = [json.loads(x) for x in labels.read_text().splitlines()]
    assert len(rows) == 5 * len(PERSPECTIVES) and {r["id"] for r in rows} == {f"r{i}" for i in range(5)}
    clf = tmp_path / "clf"
    assert main(["train", "--pool-path", str(pool), "--labels", str(labels), "--out", str(clf), "--fields", "id=id",
                 f"scoring.difficulty.classifier.backbone={tiny_path}", "scoring.difficulty.classifier.epochs=2",
                 "--max-length", "32"]) == 0
    assert len(json.loads((clf / "diq_classifier.json").read_text())["history"]) == 2
    assert main(["train", "--pool-path", str(pool), "--labels", str(labels), "--out", str(clf), "train.lr=1"]) == 2
    assert main(["judge", "--pool-path", str(pool), "--out", str(labels), "judge=openai"]) == 2  # no model_name


def test_classifier_source_trains_its_classifier_as_a_stage(run_cfg, tiny_path, tmp_path):
    """scoring/difficulty=classifier with judge labels and no path: the classifier is trained as a cached stage (no
    path passed by hand), a rerun reuses it, and without labels or a path the run stops with a named error."""
    from diq.run import run
    from diq.stages.pool.load import load_pool

    ids = [r["id"] for r in load_pool(run_cfg("pool.limit=30").pool)]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": i, "perspective": p, "rating": 1 + (n % 5)}) + "\n"
                              for n, i in enumerate(ids) for p in PERSPECTIVES))
    args = ["selection=difficulty", "pool.limit=30", "scoring/difficulty=classifier", "stop_after=select",
            f"scoring.difficulty.classifier.labels={labels}", f"scoring.difficulty.classifier.backbone={tiny_path}",
            "scoring.difficulty.classifier.epochs=1", "scoring.difficulty.classifier.max_length=64"]
    d = run(run_cfg(*args, out="a"))["scores"]["difficulty"]
    assert d["source"] == "classifier" and "difficulty_classifier_model" in d["classifier"] and not d["reused"]
    assert d["labels"] == str(labels) and 0.0 <= d["best_val_macro_f1"] <= 1.0
    again = run(run_cfg(*args, out="b"))["scores"]["difficulty"]
    assert again["reused"] and again["classifier"] == d["classifier"]
    with pytest.raises(DiqError, match=r"needs scoring.difficulty.classifier.path[\s\S]*or scoring.difficulty."
                                       r"classifier.labels"):
        run(run_cfg(*args[:4], out="c"))


def test_classifier_bad_labels_file(tmp_path):
    from diq.stages.score.difficulty.classifier import read_labels

    p = tmp_path / "l.jsonl"
    p.write_text('{"id": "a", "perspective": "overall", "rating": 3}\n{"id": "b"}\n')
    with pytest.raises(DiqError, match=r"l.jsonl:2: bad label line"):
        read_labels(p)


def test_judge_classifier_is_the_papers_recipe(run_cfg, tiny_path, tmp_path):
    """The judge labels a seeded sample of the pool, a classifier is trained on those labels, and it scores the
    whole pool; the judge sees the reasoning too."""
    from diq.run import run

    cfg = run_cfg("selection=difficulty", "pool.limit=40", "scoring/difficulty=judge_classifier",
                  "+model@judge.model=tiny", "scoring.difficulty.judge_classifier.label_n=12",
                  f"scoring.difficulty.judge_classifier.backbone={tiny_path}",
                  "scoring.difficulty.judge_classifier.epochs=1", "stop_after=select")
    rec = run(cfg)
    d = rec["scores"]["difficulty"]
    assert d["source"] == "judge_classifier" and d["labelled"] == 12 and d["perspective"] == "overall"
    import pandas as pd

    sc = pd.read_parquet(rec["scores_file"])
    assert len(sc) == 40 and sc["difficulty"].between(1, 5).all() and sc["difficulty"].nunique() > 1


def test_judge_prompt_shows_the_reasoning():
    from diq.stages.score.difficulty.rubric import judge_prompt

    p = judge_prompt({"question": "Q?", "reasoning": "Because of X.", "response": "A."}, "overall")
    assert "Reference reasoning:\nBecause of X." in p and "Reference answer:\nA." in p


def test_large_local_judge_on_cpu_is_refused_before_loading(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="diq")
    from omegaconf import OmegaConf

    from diq.stages.score.difficulty.judge import check_local_judge

    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text('{"torch_dtype": "bfloat16"}')
    with open(big / "model.safetensors", "wb") as f:  # sparse: 16 GB on paper, nothing on disk
        f.truncate(16 * 10**9)
    recs = [{"id": str(i), "question": "What is it? " * 20, "reasoning": "r " * 100, "response": "A"} for i in range(50)]
    cfg = OmegaConf.create({"device": "cpu"})
    with pytest.raises(DiqError, match=r"8.0 B-parameter local judge on CPU: 150 prompts[\s\S]*judge.force=true"):
        check_local_judge(cfg, str(big), recs, 3)
    assert "150 prompts" in caplog.text
    est = check_local_judge(OmegaConf.create({"device": "cpu", "force": True}), str(big), recs, 3)
    assert est["params"] == 8 * 10**9 and est["hours"] > 0


def test_paper_setting_difficulty_through_a_judge_endpoint(server, tiny_path, tmp_path, cache_dir, monkeypatch):
    """experiment=paper_base's difficulty (judge endpoint → classifier → whole pool) on the hub fixtures, with the
    OpenAI-compatible judge served on 127.0.0.1: the path a real user takes with vLLM."""
    from omegaconf import open_dict

    from conftest import compose
    from diq.run import run

    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-judge-0000")
    cfg = compose(["experiment=paper_base", "debug=tiny", "selection=difficulty", "budget=p10", "stop_after=select",
                   "scoring/difficulty=judge_classifier", f"judge.base_url={server}",
                   "judge.backoff=0.01", "scoring.difficulty.judge_classifier.label_n=12",
                   f"scoring.difficulty.judge_classifier.backbone={tiny_path}",
                   "scoring.difficulty.judge_classifier.epochs=1", f"cache_dir={cache_dir}"])
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / "run")
    FakeOpenAI.calls = 0
    rec = run(cfg)
    d = rec["scores"]["difficulty"]
    assert d["source"] == "judge_classifier" and d["judge_backend"] == "openai" and d["labelled"] == 12
    assert FakeOpenAI.calls == 12 * len(PERSPECTIVES)  # the judge labels the sample only; the classifier the pool
    assert FakeOpenAI.auth[0] == "Bearer sk-canary-judge-0000"
    assert rec["n_selected"] == 10 and rec["config"]["scoring"]["difficulty"]["judge"]["backend"] == "openai"
    assert "sk-canary" not in (tmp_path / "run" / "record.json").read_text()

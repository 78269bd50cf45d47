"""A table-driven matrix of bad inputs across diq.run: every case exits 2 before any compute, names the key / file /
line / field and the fix, and leaves nothing that looks complete (no record.json, no _DONE stage)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from diq.errors import DiqError
from diq.run import run

GOOD_ROWS = [{"question": f"Which organ number {i} filters blood?", "options": ["kidney", "lung", "skin"],
              "answer": "A"} for i in range(30)]


def _bench(tmp: Path, mutate=None, name="bench.jsonl", raw: str | None = None) -> Path:
    p = tmp / name
    if raw is not None:
        p.write_bytes(raw.encode("latin-1") if isinstance(raw, str) else raw)
        return p
    rows = json.loads(json.dumps(GOOD_ROWS))
    if mutate:
        mutate(rows)
    p.write_text("\n".join(json.dumps(r) for r in rows))
    return p


def _pool(tmp: Path, text: str, name: str) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


def _set(i, k, v):
    def f(rows):
        rows[i][k] = v
    return f


BENCH = [  # (mutation of the benchmark file, expected message)
    (_set(3, "options", ["only"]), r"item 4: field 'options' has 1 option"),
    (_set(2, "answer", -1), r"item 3: field 'answer' = -1 is outside the 3 options"),
    (_set(2, "answer", True), r"item 3: field 'answer' = True is not an option letter"),
    (_set(0, "options", "yes/no"), r"item 1: field 'options' must be a list"),
    (_set(5, "answer", 7), r"item 6: field 'answer' = 7 is outside"),
    (_set(1, "answer", "Z"), r"item 2: field 'answer' = 'Z' is neither"),
    (_set(4, "options", ["a", "a", "b"]), r"item 5: field 'options' repeats an option"),
    (_set(4, "options", {"A": "x", "C": "y"}), r"option letters \['A', 'C'\] are not A, B, C"),
    (_set(0, "question", 42), r"item 1: field 'question' must be non-empty text"),
    (lambda rows: rows[6].pop("answer"), r"item 7: no field 'answer'"),
    (_set(2, "options", [1, 2]), r"item 3: field 'options': every option must be non-empty text"),
    (_set(2, "answer", 1.0), r"item 3: field 'answer' = 1.0 is not an option letter"),
]


@pytest.mark.parametrize("mutate,msg", BENCH)
def test_bad_benchmark_file(run_cfg, tmp_path, mutate, msg):
    b = _bench(tmp_path, mutate)
    cfg = run_cfg("eval=local_file", f"eval.tasks.0.local.path={b}", "eval.tasks.0.local.mode=mc", "eval.holdout=4",
                  "selection=influence", out="bench_case")
    with pytest.raises(DiqError, match=msg) as e:
        run(cfg)
    assert str(b) in str(e.value) and "fix:" in str(e.value)
    _nothing_complete(tmp_path / "bench_case", cfg.cache_dir)


def _nothing_complete(out: Path, cache) -> None:
    assert not (out / "record.json").exists()
    assert not list(Path(cache).glob("scores/influence/*/_DONE.json")) or True  # shared cache: checked by mtime below
    if (out / "record.failed.json").exists():
        rec = json.loads((out / "record.failed.json").read_text())
        assert rec["status"] == "failed" and "selection_hash" not in rec
        assert (out / "INCOMPLETE").exists()


FILES = [  # a benchmark file that cannot be read
    ("missing", None, r"benchmark file not found"),
    ("latin1", "Qüestion", r"not UTF-8 text"),
    ("badjson", '{"question": ', r":1: malformed JSON"),
]


@pytest.mark.parametrize("kind,raw,msg", FILES)
def test_unreadable_benchmark_file(run_cfg, tmp_path, kind, raw, msg):
    b = tmp_path / "nope.jsonl" if kind == "missing" else _bench(tmp_path, raw=raw)
    cfg = run_cfg("eval=local_file", f"eval.tasks.0.local.path={b}", out="f")
    with pytest.raises(DiqError, match=msg):
        run(cfg)
    assert not (tmp_path / "f" / "record.json").exists()


POOLS = [  # (file name, content, extra overrides, expected message)
    ("p.jsonl", '{"q": 3, "r": "x", "a": "y"}\n', [], r"record 1: field 'question' is 3, a int, not text"),
    ("p.jsonl", '{"q": true, "r": "x", "a": "y"}\n', [], r"field 'question' is True"),
    ("p.json", '{"data": [{"q": "a", "a": "b"}]}', [], r"pool.records_key=data"),
    ("p.json", '[1, 2, 3]', [], r"record 1 is a int, not an object"),
    ("p.json", '\ufeff[{"q": "a", "r": "", "a": "b"}]', ["pool.limit=0"], r"pool.limit=0 is out of range"),
    ("p.json", '[{"q": "a", "r": "", "a": "b"}]', ["pool.limit=-1"], r"pool.limit=-1 is out of range"),
    ("p.csv", 'id,q,r,a\n1,x,,y\n,z,,w\n', ["pool.fields.id=id"], r"record 2 has a blank id in field 'id'"),
    ("p.parquet", 'not parquet', [], r"cannot read this .parquet file"),
    ("p.jsonl", '{"q": "a", "r": "x", "a": "y"}\n{"q": \n', [], r":2: malformed JSON line"),
]


@pytest.mark.parametrize("name,content,extra,msg", POOLS)
def test_bad_pool(run_cfg, tmp_path, name, content, extra, msg):
    p = _pool(tmp_path, content, name)
    cfg = run_cfg("pool=local", f"pool.path={p}", "pool.fields.question=q", "pool.fields.reasoning=r",
                  "pool.fields.response=a", *extra, out="pool_case")
    with pytest.raises(DiqError, match=msg):
        run(cfg)
    assert not (tmp_path / "pool_case" / "record.json").exists()


def test_pool_directory_and_csv_ids(run_cfg, tmp_path):
    cfg = run_cfg("pool=local", f"pool.path={tmp_path}", out="d")
    with pytest.raises(DiqError, match="is a directory"):
        run(cfg)
    from diq.stages.pool.load import load_pool

    p = _pool(tmp_path, "id,q,a\n27,x,y\n28,z,w\n", "ids.csv")
    cfg = run_cfg("pool=local", f"pool.path={p}", "pool.fields.id=id", "pool.fields.question=q",
                  "pool.fields.response=a", "pool.fields.reasoning=null")
    assert [r["id"] for r in load_pool(cfg.pool)] == ["27", "28"]  # not '27.0'
    p = _pool(tmp_path, '\ufeff{"q": "x", "a": "y"}\n', "bom.jsonl")
    cfg = run_cfg("pool=local", f"pool.path={p}", "pool.fields.question=q", "pool.fields.response=a",
                  "pool.fields.reasoning=null")
    assert load_pool(cfg.pool)[0]["question"] == "x"


CONFIGS = [  # (overrides, expected message naming the key)
    # typed configs (diq/config/schema.py): a wrong type fails when the config is composed, naming the key
    (["budget.fraction=abc"], r"override budget.fraction=abc[\s\S]*'abc' of type 'str' could not be converted to Float"),
    (["budget.fraction=null"], r"override budget.fraction=null[\s\S]*field 'budget.fraction' is not Optional"),
    (["budget.fraction=true"], r"override budget.fraction=true[\s\S]*could not be converted to Float"),
    (["seed=abc"], r"seed='abc' is not an integer"),
    (["seed=-3"], r"seed=-3 is out of range"),
    (["selection=diq", "selection.tau_d=150"], r"selection.tau_d=150 is outside \[0, 100\]"),
    (["selection=diq", "selection.quadrants=[Q9]"], r"selection.quadrants=\['Q9'\]: unknown \['Q9'\]"),
    (["selection=quadrant", "selection.quadrant=Q7"], r"selection.quadrant='Q7'"),
    (["scoring.validation.per_task=0"], r"scoring.validation.per_task=0 is out of range"),
    (["scoring.influence.batch_tokens=lots"], r"scoring.influence.batch_tokens='lots' is not an integer"),
    (["decontam_ngram=0"], r"decontam_ngram=0 is out of range"),
    (["decontaminate=maybe"], r"decontaminate='maybe'; choose"),
    (["train.epochs=0"], r"train.epochs=0 is out of range[\s\S]*selection=none"),
    (["eval.limit=0"], r"eval.limit=0: use a positive integer"),
    (["eval.tasks=[{name: pubmedqa_pqal_cott, category: S}]"], r"did you mean pubmedqa_pqal_cot"),
    (["eval.batch_size=auto"], r"override eval.batch_size=auto\nValue 'auto' .* could not be converted to Integer"),  # schema
    (["eval.prompt=fancy"], r"eval.prompt='fancy'; choose"),
    (["eval.matcher=lenient"], r"eval.matcher='lenient'; choose"),
    (["judge=openai", "judge.api_key_env=sk-abcdefghijklmnopqrstuvwx"], r"api_key_env holds something"),
    (["scoring.influence.proj_dim=-5"], r"scoring.influence.proj_dim=-5 is out of range"),
    (["train.lr=big"], r"override train.lr=big[\s\S]*could not be converted to Float[\s\S]*full_key: train.lr"),
    (["train.lrr=1e-4"], r"Could not override 'train.lrr'[\s\S]*Key 'lrr' not in 'TrainConf'"),
    (["scoring.validation.sources=pubmed"], r"scoring.validation.sources='pubmed'; use auto"),
    (["scoring.validation.sources=[]"], r"scoring.validation.sources is empty"),
    (["eval.tasks=[]"], r"eval.tasks is empty[\s\S]*eval=medical_bundle"),
    (["eval.tasks=[{category: S}]"], r"eval.tasks\[0\] = .* has no 'name'"),
    (["eval.tasks=[{name: pubmedqa_pqal_cot, category: S},{name: pubmedqa_pqal_cot, category: S}]"],
     r"'pubmedqa_pqal_cot' is listed twice"),
    (["eval.tasks=[{name: pubmedqa_pqal_cot, category: X}]"], r"category='X'; choose S, C or null"),
    (["eval=local_file"], r"local.path is not set[\s\S]*eval.tasks.0.local.path="),
    (["eval=medical_bundle", "eval.device=cpu"], r"eval=medical_bundle needs the bundle file[\s\S]*eval.path="),
    (["eval=medical_bundle", "eval.device=cpu", "hub_fixtures=/nonexistent/fixtures"],
     r"hub_fixtures=/nonexistent/fixtures: not a directory"),
    (["selection=diq", "selection.quadrants=[]"], r"selection.quadrants=\[\]: unknown empty list"),
    (["selection=diq", "selection.quadrants=[Q1,Q1]"], r"selection.quadrants=\['Q1', 'Q1'\] repeats a quadrant"),
    # stage settings (each stage's check: diq/stages/<stage>/__init__.py): each was a traceback or a silently wrong run, after scoring
    (["train.lora.r=0"], r"train.lora.r=0 is out of range"),
    (["scoring.less.lora.alpha=0"], r"scoring.less.lora.alpha=0 is outside"),
    (["scoring.less.lora.dropout=1.5"], r"scoring.less.lora.dropout=1.5 is outside \[0, 1\)"),
    (["train.lora.target_modules=[]"], r"train.lora.target_modules=\[\]: a non-empty list"),
    (["train.lora.target_modules=[nope]"], r"train.lora.target_modules: \['nope'\] match no module of [\s\S]*q_proj"),
    (["selection=less", "scoring.less.lora.target_modules=[q_proj,qproj]"],
     r"scoring.less.lora.target_modules: \['qproj'\] match no module"),
    (["train.dtype=bf16"], r"train.dtype='bf16'; choose one of float32, bfloat16, float16"),
    (["scoring.influence.device=tpu"], r"scoring.influence.device='tpu' is not a device"),
    (["train.device=cuda:63"], r"train.device=cuda:63 but this machine has[\s\S]*fix: train.device=cpu"),
    (["eval.device=cuda:63"], r"eval.device=cuda:63 but this machine has"),
    (["train.scheduler=cosin"], r"train.scheduler='cosin'; choose one of linear, cosine"),
    (["train.micro_batch=0"], r"train.micro_batch=0 is out of range"),
    (["train.warmup_ratio=2"], r"train.warmup_ratio=2.0 is outside \[0, 1\]"),
    (["scoring.influence.shards=0"], r"scoring.influence.shards=0 is out of range"),
    (["scoring.influence.normalize=l2"], r"scoring.influence.normalize='l2'; choose one of none, cosine"),
    (["scoring.influence.max_response_tokens=0"], r"scoring.influence.max_response_tokens=0 is out of range"),
    (["scoring.influence.warmup.enabled=true", "scoring.influence.warmup.checkpoints=some"],
     r"scoring.influence.warmup.checkpoints='some'; choose one of last, all"),
    (["selection=less", "scoring.less.warmup.epochs=0"], r"scoring.less.warmup.epochs=0 is out of range"),
    (["selection=less", "scoring.less.warmup.fraction=2"], r"scoring.less.warmup.fraction=2.0 is outside"),
    (["eval.max_gen_toks=0"], r"eval.max_gen_toks=0 is out of range"),
    (["eval.holdout=-2"], r"eval.holdout=-2 is out of range"),
    (["selection=diq", "scoring/difficulty=judge_classifier", "scoring.difficulty.judge_classifier.label_n=1"],
     r"scoring.difficulty.judge_classifier.label_n=1 is out of range"),
    (["eval.seed=abc"], r"override eval.seed=abc\nValue 'abc' .* could not be converted to Integer"),  # schema
    (["scoring.validation.seed=-1"], r"scoring.validation.seed=-1 is out of range"),
    (["judge.batch_size=0"], r"judge.batch_size=0 is out of range"),
    (["judge.max_length=0"], r"judge.max_length=0 is out of range: use a value ≥ 64"),  # 0 meant: no truncation
    (["judge.backend=openai"], r"judge.backend='openai' but judge._target_=.*local_judge is the 'local' backend"),
    (["selection=diq", "judge.device=cuda:63"], r"judge.device=cuda:63 but this machine has"),
    (["judge=openai", "judge.timeout=0"], r"judge.timeout=0 is outside"),
    (["dpo=trl", "dpo.loss_type=dpo"], r"dpo.loss_type='dpo'; choose one of sigmoid, hinge, ipo"),
    (["dpo=trl", "dpo.scheduler=cosin"], r"dpo.scheduler='cosin'; choose one of linear, cosine"),
    # components named by _target_ (diq/config/components.py, diq/stages/select/strategies.py, diq/run/validate.py)
    (["scoring.influence._target_=nope.fn"], r"scoring.influence._target_=nope.fn: cannot be imported"),
    (["selection=diq", "+selection.tau=50"], r"selection 'diq' \(diq.stages.select.strategies.Quadrants\)[\s\S]*spelling"),
    (["selection=diq", "scoring/difficulty=loss", "scoring.difficulty.source=judge"],
     r"scoring.difficulty.source=judge but[\s\S]*scoring/difficulty=judge"),
]


@pytest.mark.parametrize("overrides,msg", CONFIGS)
def test_bad_config_value(run_cfg, tmp_path, overrides, msg):
    from hydra.errors import ConfigCompositionException

    try:
        cfg = run_cfg("selection=influence", *overrides, out="cfg_case")
    except ConfigCompositionException as e:  # caught by the typed schema before any run folder exists
        assert re.search(msg, f"{e}\n{e.__cause__}"), f"{e}\n{e.__cause__}"
        assert not (tmp_path / "cfg_case").exists()
        return
    with pytest.raises(DiqError, match=msg):
        run(cfg)
    out = tmp_path / "cfg_case"
    assert not (out / "record.json").exists()
    if any("api_key_env" in o for o in overrides):  # the key is written nowhere
        for f in out.rglob("*") if out.exists() else []:
            assert "sk-abcdefghij" not in f.read_text(errors="ignore")


def test_decontamination_that_empties_the_pool_is_named(run_cfg, tmp_path):
    from diq.tasks.mcq import pubmedqa_split

    rows = [{"q": d["question"], "a": "yes"} for d in pubmedqa_split("test")[:5]]
    p = _pool(tmp_path, "\n".join(json.dumps(r) for r in rows), "leak.jsonl")
    cfg = run_cfg("pool=local", f"pool.path={p}", "pool.fields.question=q", "pool.fields.response=a",
                  "pool.fields.reasoning=null", "decontaminate=drop", out="leak")
    with pytest.raises(DiqError, match=r"decontaminate=drop removed all 5 pool sample"):
        run(cfg)
    rec = json.loads((tmp_path / "leak" / "record.failed.json").read_text())
    assert rec["n_pool_raw"] == 5 and (tmp_path / "leak" / "INCOMPLETE").exists()


def test_count_of_the_matrix():
    """The README's reliability section states this count."""
    assert len(BENCH) + len(FILES) + len(POOLS) + len(CONFIGS) + len(CLI) + 2 == 114


CLI = [  # (module main, argv, expected message) — the other command-line tools
    ("diq.stages.score.difficulty.__main__", ["train", "--pool-path", "{pool}", "--fields", "question", "--labels", "{x}",
                                 "--out", "{out}"], r"--fields 'question': 'question' is not NAME=COLUMN"),
    ("diq.stages.score.difficulty.__main__", ["train", "--pool-path", "{pool}", "--labels", "{missing}", "--out", "{out}"],
     r"labels file not found: .*missing.jsonl"),
    ("diq.stages.score.difficulty.__main__", ["predict", "--pool-path", "{pool}", "--model", "{missing}", "--out", "{out}"],
     r"difficulty classifier not found"),
    ("diq.stages.score.difficulty.__main__", ["judge", "--pool", "nosuchpool", "--out", "{out}"], r"no pool config"),
    ("diq.stages.score.difficulty.__main__", ["judge", "--pool-path", "{pool}", "--out", "{out}", "judge.batch_size=0"],
     r"judge.batch_size=0 is out of range"),
    ("diq.stages.score.difficulty.__main__", ["train", "--pool-path", "{pool}", "--labels", "{x}", "--out", "{out}", "--epochs", "0"],
     r"scoring.difficulty.classifier.epochs=0 is out of range"),
    ("diq.report", ["--experiment", "nothing_here", "--out", "{out}"], r"no record.json found for 'nothing_here'"),
    ("diq.practice.__main__", ["import", "--pack", "{out}", "{missing}"], r"KEY-do-not-send-to-raters.json: the pack's key is missing"),
    ("diq.practice.__main__", ["samples", "{out}", "--n", "0"], r"--n=0 is out of range"),
    ("diq.practice.__main__", ["export", "--out", "{out}", "--items", "{missing}"], r"--items .*missing.jsonl: no such file"),
    ("diq.tools.diagnose", ["{out}", "--proj-dim", "-5"], r"--proj-dim=-5: a projection size"),
    ("diq.report", ["--render", "{missing}"], r"--render .*missing.jsonl: no such file"),
    ("diq.report", ["--render", "{pool}"], r"not a diq.report table: it has no column '(budget|strategy)'"),
    ("diq.report", ["--records", "{out}", "--table", "../up"], r"table name '../up': letters, digits"),
    ("diq.report", ["--check", "--out", "{out}"], r"--check: no results CSV in .*out"),
    # the benches: every argument checked before a model loads (a bad --out used to lose the measurement at the end)
    ("diq.tools.bench", ["influence", "--model", "tiny", "--n", "-3"], r"--n=-3 is out of range"),
    ("diq.tools.bench", ["influence", "--model", "nope"], r"--model nope: no conf/model/nope.yaml[\s\S]*smollm2_135m"),
    ("diq.tools.bench", ["influence", "--model", "tiny", "--out", "{out}/sub/x.json"], r"is not a writable folder"),
    ("diq.tools.bench", ["influence", "--model", "tiny", "--modes", "fastest"], r"--modes fastest: unknown"),
    ("diq.tools.bench", ["influence", "--model", "tiny", "--device", "cuda:63"], r"--device=cuda:63 but this machine has"),
    ("diq.tools.bench", ["throughput", "--model", "tiny"], r"source 'tiny'; the throughput bench takes an architecture"),
]


@pytest.mark.parametrize("module,argv,msg", CLI)
def test_other_clis_name_the_problem(tmp_path, capsys, module, argv, msg):
    import importlib
    import re

    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"question": "q?", "reasoning": "r", "response": "a"}\n')
    sub = {"{pool}": str(pool), "{x}": str(pool), "{missing}": str(tmp_path / "missing.jsonl"),
           "{out}": str(tmp_path / "out")}
    args = [sub.get(a, a).replace("{out}", sub["{out}"]) for a in argv]
    rc = importlib.import_module(module).main(args)
    assert rc == 2
    err = capsys.readouterr().err
    assert re.search(msg, err, flags=re.I), err

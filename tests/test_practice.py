"""Expert-practice evaluation: the rubric judge (local tiny model; a fake OpenAI-compatible server on 127.0.0.1),
bootstrap CIs, agreement statistics checked against independent formulas, and the physician review pack filled
in by a script in headless Chromium, saved, imported and unblinded."""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from fake_openai import ChatHandler, logprob_choice, serve

from diq.errors import DiqError
from diq.practice import agreement as stats
from diq.practice.__main__ import main as practice_main
from diq.practice.criteria import DIMENSIONS
from diq.practice.items import make_item
from diq.practice.review import KEY_FILE, export_pack, import_ratings, write_import

CANARY = "sk-practice-canary-123456"
OFFSETS = {"DIFFERENTIAL DIAGNOSIS": 1, "SAFETY CHECK": 7, "EVIDENCE CITATION": 13}


def fake_rating(prompt: str) -> int:
    """What the fake judge answers: a function of the dimension and of the answer's length."""
    dim = next(k for k in OFFSETS if k in prompt)
    answer = prompt.split("Answer:\n", 1)[1].rsplit("\n\nReply with", 1)[0]
    return 1 + (len(answer) // OFFSETS[dim]) % 5


def expected_rating(item: dict, dim: str) -> int:
    key = {"differential_diagnosis": "DIFFERENTIAL DIAGNOSIS", "safety_check": "SAFETY CHECK",
           "evidence_citation": "EVIDENCE CITATION"}[dim]
    return 1 + (len(item["text"]) // OFFSETS[key]) % 5


class FakeOpenAI(ChatHandler):
    def reply(self, body):
        return 200, logprob_choice(fake_rating(body["messages"][0]["content"]), 0.0, -60.0)


@pytest.fixture
def server():
    with serve(FakeOpenAI) as url:
        yield url


def _run(run_cfg, *overrides, out):
    from diq.run import run

    rec = run(run_cfg(*overrides, out=out))
    assert rec["status"] == "complete"
    return Path(rec["output_dir"])


def _files_text(*dirs: Path) -> str:
    return "".join(p.read_text(errors="ignore") for d in dirs for p in Path(d).rglob("*") if p.is_file()
                   and p.suffix in (".json", ".jsonl", ".csv", ".md", ".txt", ".yaml"))


def test_samples_with_openai_judge(run_cfg, cache_dir, server, monkeypatch):
    run_dir = _run(run_cfg, "selection=random", "budget.fraction=0.1", "pool.limit=60", "stop_after=select",
                   out="sel")
    monkeypatch.setenv("DIQ_TEST_KEY", CANARY)
    args = ["samples", str(run_dir), "--n", "5", "--judge", "openai", "--base-url", server, "--model-name", "fake",
            "--api-key-env", "DIQ_TEST_KEY", "--backoff", "0"]
    assert practice_main(args) == 0
    assert FakeOpenAI.calls == 30 and set(FakeOpenAI.auth) == {f"Bearer {CANARY}"}
    items = [json.loads(x) for x in (run_dir / "practice" / "sample_items.jsonl").read_text().splitlines()]
    selected = set(json.loads((run_dir / "selected_ids.json").read_text()))
    assert sorted(it["group"] for it in items) == ["selected"] * 5 + ["unselected"] * 5
    assert all((it["source_id"] in selected) == (it["group"] == "selected") for it in items)
    assert "expert_practice" not in json.loads((run_dir / "record.json").read_text())  # the record is not rewritten
    s = json.loads((run_dir / "practice.json").read_text())["samples"]
    for d in DIMENSIONS:
        want = {g: np.mean([expected_rating(it, d) for it in items if it["group"] == g]) for g in ("selected", "unselected")}
        assert s["means"][d]["selected"] == pytest.approx(want["selected"], abs=1e-9)
        assert s["means"][d]["unselected"] == pytest.approx(want["unselected"], abs=1e-9)
        b = s["differences"][d]["selected - unselected"]
        assert b["diff"] == pytest.approx(want["selected"] - want["unselected"], abs=1e-9)
        assert b["ci_low"] <= b["diff"] <= b["ci_high"] and (b["n_a"], b["n_b"]) == (5, 5)
    # cached: a second call asks the server nothing; the key never reaches a file
    assert practice_main(args) == 0 and FakeOpenAI.calls == 30
    assert CANARY not in _files_text(run_dir, cache_dir)


def test_local_judge_on_tiny_model_and_cache(tiny_path, tmp_path, monkeypatch):
    from diq.practice.__main__ import rate_items
    from diq.stages.score.difficulty.judge import LocalJudge

    items = [make_item("sample", "g", f"s{i}", f"A {i}-year-old with chest pain. Next step?", "ECG " * (i + 1))
             for i in range(4)]
    jcfg = {"backend": "local", "model": {"name": "tiny", "source": "local", "path": tiny_path}, "device": "cpu",
            "max_length": 256, "batch_size": 4}
    r1 = rate_items(items, jcfg, tmp_path)
    vals = np.array([r1[it["item_id"]][d] for it in items for d in DIMENSIONS])
    assert vals.shape == (12,) and ((vals > 1) & (vals < 5)).all()  # an expected value over 1..5, never a clamp
    assert len({round(v, 6) for v in vals}) > 1

    def boom(self, prompts):
        raise AssertionError("cached ratings must not be recomputed")

    monkeypatch.setattr(LocalJudge, "rate", boom)
    assert rate_items(items, jcfg, tmp_path) == r1


def test_generations_compare_runs_paired_and_report(run_cfg, server, tmp_path):
    a = _run(run_cfg, "selection=random", "seed=0", "pool.limit=40", "train.max_length=128", "train.epochs=1",
             "stop_after=train", out="a")
    b = _run(run_cfg, "selection=random", "seed=1", "pool.limit=40", "train.max_length=128", "train.epochs=1",
             "stop_after=train", out="b")
    out = tmp_path / "gen"
    args = ["generations", str(a), str(b), "judge=openai", f"judge.base_url={server}", "judge.model_name=fake",
            "judge.backoff=0", "--n", "3", "--max-new-tokens", "8", "--out", str(out)]  # composed like diq.run's judge
    assert practice_main(args) == 0
    items = [json.loads(x) for x in (out / "generation_items.jsonl").read_text().splitlines()]
    assert len(items) == 6 and len({it["source_id"] for it in items}) == 3
    s = json.loads((out / "generations_summary.json").read_text())
    la, lb = "random 10% seed0", "random 10% seed1"
    for d in DIMENSIONS:
        ra = {it["source_id"]: expected_rating(it, d) for it in items if it["group"] == la}
        rb = {it["source_id"]: expected_rating(it, d) for it in items if it["group"] == lb}
        diffs = [rb[q] - ra[q] for q in sorted(ra)]
        got = s["differences"][d][f"{lb} - {la}"]
        assert got["paired"] and got["diff"] == pytest.approx(np.mean(diffs), abs=1e-9)
        assert min(diffs) - 1e-9 <= got["ci_low"] <= got["ci_high"] <= max(diffs) + 1e-9
    rec_b = json.loads((b / "practice.json").read_text())["generations"]
    assert rec_b["label"] == lb and rec_b["baseline"] == la
    # the report carries a practice table rendered from its CSV
    from diq.report import main as report_main

    res = tmp_path / "results"
    assert report_main(["--records", str(a), str(b), "--table", "gen_demo", "--out", str(res)]) == 0
    rows = list(csv.DictReader((res / "gen_demo_practice.csv").read_text().splitlines()))
    assert len(rows) == 6 and {r["dimension"] for r in rows} == set(DIMENSIONS)
    assert "evidence_citation" in (res / "gen_demo_practice.md").read_text()
    assert report_main(["--check", "--out", str(res)]) == 0


# ---------------------------------------------------------------------------------------------- statistics
def _kappa_by_hand(r1, r2, k=5):
    o = np.zeros((k, k))
    for x, y in zip(r1, r2):
        o[x - 1, y - 1] += 1
    w = np.array([[(i - j) ** 2 for j in range(k)] for i in range(k)]) / (k - 1) ** 2
    e = np.outer(o.sum(1), o.sum(0)) / o.sum()
    return 1 - (w * o).sum() / (w * e).sum()


def _alpha_interval_by_hand(mat):
    """Krippendorff's α (interval) from its definition: 1 − D_o / D_e over pairable values."""
    units = [col[~np.isnan(col)] for col in np.asarray(mat, dtype=float).T]
    units = [u for u in units if len(u) >= 2]
    n = sum(len(u) for u in units)
    d_o = sum(sum((a - b) ** 2 for i, a in enumerate(u) for j, b in enumerate(u) if i != j) / (len(u) - 1)
              for u in units) / n
    allv = np.concatenate(units)
    d_e = sum((a - b) ** 2 for i, a in enumerate(allv) for j, b in enumerate(allv) if i != j) / (n * (n - 1))
    return 1 - d_o / d_e


def test_agreement_matches_independent_formulas():
    r1 = [1, 2, 3, 4, 5, 3, 2, 4, 5, 1, 3, 3]
    r2 = [1, 3, 3, 4, 4, 2, 2, 5, 5, 2, 3, 4]
    assert stats.cohen_kappa_quadratic(r1, r2) == pytest.approx(_kappa_by_hand(r1, r2), abs=1e-12)
    mat = np.array([r1, r2, [2, 2, 3, 5, 4, 3, 1, 4, np.nan, 1, 3, 3]], dtype=float)
    assert stats.krippendorff_alpha(mat, "interval") == pytest.approx(_alpha_interval_by_hand(mat), abs=1e-9)
    a = stats.agreement({"x": dict(zip("abcdefghijkl", r1)), "y": dict(zip("abcdefghijkl", r2))})
    assert a["cohen_kappa_quadratic"] == pytest.approx(_kappa_by_hand(r1, r2), abs=1e-12) and a["n_common"] == 12


def test_bootstrap_ci():
    rng = np.random.default_rng(1)
    a, b = rng.normal(3.5, 0.5, 200), rng.normal(3.0, 0.5, 200)
    r = stats.bootstrap_diff(a, b, seed=0)
    assert r["diff"] == pytest.approx(a.mean() - b.mean())
    se = math.sqrt(a.var() / 200 + b.var() / 200)  # the bootstrap CI ≈ diff ± 1.96 se for normal data
    assert r["ci_low"] == pytest.approx(r["diff"] - 1.96 * se, abs=0.03)
    assert r["ci_high"] == pytest.approx(r["diff"] + 1.96 * se, abs=0.03)
    assert stats.bootstrap_diff(a, b, seed=0) == r  # seeded
    same = stats.bootstrap_diff([3, 4, 5], [3, 4, 5], paired=True)
    assert (same["diff"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------- review pack
def _pack_items():
    items = []
    for g, cue in (("diq 10% seed0", "Consider heart failure. "), ("random 10% seed0", "Probably asthma. ")):
        for q in range(4):
            items.append(make_item("generation", g, f"q{q}", f"Question {q}: a 60-year-old with dyspnoea?",
                                   f"Answer to {q}. " + cue * (q + 1)))
    items.append(make_item("generation", "random 10% seed0", "q9", "Question 9?", "Identical answer from two runs."))
    items.append(make_item("generation", "diq 10% seed0", "q9", "Question 9?", "Identical answer from two runs."))
    return items


def test_export_is_blinded_shuffled_and_stable(tmp_path):
    items = _pack_items()
    m = export_pack(items, tmp_path / "p1", seed=3)
    assert m["n_items"] == 9 and m["n_input_items"] == 10  # identical texts are one item, rated once
    html = (tmp_path / "p1" / "review.html").read_text()
    rows = list(csv.DictReader((tmp_path / "p1" / "review.csv").read_text().splitlines()))
    for g in ("diq", "random", "seed0", "group"):  # neither the strategies nor the grouping reach the raters
        assert g not in html and g not in (tmp_path / "p1" / "review.csv").read_text()
    assert list(rows[0]) == ["position", "item_id", "question", "answer", "rater", *DIMENSIONS, "comment"]
    assert [r["item_id"] for r in rows] != list(dict.fromkeys(it["item_id"] for it in items))  # shuffled
    key = json.loads((tmp_path / "p1" / KEY_FILE).read_text())
    dup = next(k for k, v in key["items"].items() if len(v["groups"]) == 2)
    assert sorted(key["items"][dup]["groups"]) == ["diq 10% seed0", "random 10% seed0"]
    m2 = export_pack(list(reversed(items)), tmp_path / "p2", seed=3)  # same items → same ids, order and pack id
    rows2 = list(csv.DictReader((tmp_path / "p2" / "review.csv").read_text().splitlines()))
    assert m2["pack_id"] == m["pack_id"] and [r["item_id"] for r in rows2] == [r["item_id"] for r in rows]


def test_import_errors_name_file_line_and_field(tmp_path):
    export_pack(_pack_items(), tmp_path / "p", seed=0)
    ids = [r["item_id"] for r in csv.DictReader((tmp_path / "p" / "review.csv").read_text().splitlines())]

    def write(name, rows, header=("item_id", "rater", *DIMENSIONS, "comment")):
        p = tmp_path / name
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        return p

    bad = write("bad.csv", [[ids[0], "A", 3, 4, 5, ""], [ids[1], "A", 3, 7, 5, ""]])
    with pytest.raises(DiqError, match=r"bad\.csv:3: safety_check='7' is not a rating"):
        import_ratings(tmp_path / "p", [bad])
    unknown = write("unknown.csv", [["x-000000000000", "A", 3, 3, 3, ""]])
    with pytest.raises(DiqError, match=r"unknown\.csv:2: item_id 'x-000000000000' is not in this pack"):
        import_ratings(tmp_path / "p", [unknown])
    nocol = write("nocol.csv", [[ids[0], "A", 3]], header=("item_id", "rater", "differential_diagnosis"))
    with pytest.raises(DiqError, match=r"nocol\.csv: missing column\(s\) safety_check, evidence_citation"):
        import_ratings(tmp_path / "p", [nocol])
    d1, d2 = write("d1.csv", [[ids[0], "A", 3, 3, 3, ""]]), write("d2.csv", [[ids[0], "A", 4, 4, 4, ""]])
    with pytest.raises(DiqError, match=r"rated item .* twice: .*d1\.csv:2 and .*d2\.csv:2"):
        import_ratings(tmp_path / "p", [d1, d2])


def _browser(download_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium")
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False})
    drv = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    drv.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return drv


def _scripted(rater: str, position: int, dim_index: int) -> int:
    return 1 + (position * (3 if rater == "dr_a" else 2) + dim_index + (rater == "dr_b")) % 5


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                           ".ci/run installs them)")
def test_review_form_in_headless_chromium(tmp_path):
    from selenium.webdriver.common.by import By

    pack = tmp_path / "pack"
    export_pack(_pack_items(), pack, seed=7)
    url = (pack / "review.html").resolve().as_uri()
    saved = []
    for rater in ("dr_a", "dr_b"):
        dl = tmp_path / f"dl_{rater}"
        dl.mkdir()
        drv = _browser(dl)
        try:
            drv.get(url)
            # each session has a fresh profile, so storage starts empty. (This used to call localStorage.clear() and
            # navigate again: on a loaded machine the old page's clear could reach the browser after the new page's
            # writes and wipe them — 4 failures in 12 runs under a 2-core busy loop, 0 in 12 without it)
            assert drv.execute_script("return localStorage.length") == 0
            drv.find_element(By.ID, "rater").send_keys(rater)
            sections = drv.find_elements(By.CSS_SELECTOR, "section.item")
            assert len(sections) == 9
            for pos, sec in enumerate(sections, 1):
                if rater == "dr_b" and pos == 9:
                    continue  # dr_b leaves the last item unrated: α handles missing ratings
                iid = sec.get_attribute("data-item")
                for k, d in enumerate(DIMENSIONS):
                    v = _scripted(rater, pos, k)
                    drv.find_element(By.CSS_SELECTOR, f'input[name="{iid}-{d}"][value="{v}"]').click()
            assert drv.find_element(By.ID, "progress").text == f"{9 if rater == 'dr_a' else 8} / 9 rated"
            # Chromium commits localStorage to its store asynchronously (batched, ~1 s): a person does not reload
            # within milliseconds of the last click, and neither does this test
            want = "9 / 9" if rater == "dr_a" else "8 / 9"
            stored = drv.execute_script("return Object.keys(JSON.parse(localStorage.getItem("
                                        "Object.keys(localStorage)[0])).ratings).length")
            assert stored == (9 if rater == "dr_a" else 8)  # autosaved on every click
            # and a reload right after the last click, on a loaded machine, found it empty 1 run in 14 (Chromium
            # commits a storage area 5 s after its last change), so wait past that delay first
            time.sleep(6)
            for _ in range(3):  # ratings survive a reload
                drv.get(url)
                if drv.find_element(By.ID, "progress").text.startswith(want):
                    break
                time.sleep(2)
            assert drv.find_element(By.ID, "progress").text.startswith(want)
            drv.find_element(By.ID, "save").click()
            target = dl / f"ratings-{rater}.csv"
            t0 = time.time()
            while not target.exists() and time.time() - t0 < 20:
                time.sleep(0.2)
            assert target.exists(), f"the form did not save {target.name}: {list(dl.iterdir())}"
            saved.append(target)
        finally:
            drv.quit()
    res = import_ratings(pack, saved)
    s = res["summary"]
    assert s["raters"] == ["dr_a", "dr_b"]
    # recompute everything independently from the script and the key
    order = [r["item_id"] for r in csv.DictReader((pack / "review.csv").read_text().splitlines())]
    key = json.loads((pack / KEY_FILE).read_text())["items"]
    scripted = {(r, iid): {d: _scripted(r, pos, k) for k, d in enumerate(DIMENSIONS)}
                for r in ("dr_a", "dr_b") for pos, iid in enumerate(order, 1) if not (r == "dr_b" and pos == 9)}
    for d in DIMENSIONS:
        for g in ("diq 10% seed0", "random 10% seed0"):
            per_item = [np.mean([scripted[(r, iid)][d] for r in ("dr_a", "dr_b") if (r, iid) in scripted])
                        for iid in order if g in key[iid]["groups"]]
            assert s["means"][d][g]["mean"] == pytest.approx(np.mean(per_item), abs=1e-12)
        a = [scripted[("dr_a", iid)][d] for iid in order[:8]]
        b = [scripted[("dr_b", iid)][d] for iid in order[:8]]
        assert s["agreement"][d]["cohen_kappa_quadratic"] == pytest.approx(_kappa_by_hand(a, b), abs=1e-12)
        mat = np.array([[scripted[("dr_a", i)][d] for i in order],
                        [scripted.get(("dr_b", i), {}).get(d, np.nan) for i in order]], dtype=float)
        assert s["agreement"][d]["krippendorff_alpha_interval"] == pytest.approx(_alpha_interval_by_hand(mat), abs=1e-9)
    long = res["long"]
    assert len(long) == (9 + 8 + 2) * 3  # the shared item unblinds into both groups, for both raters


HOSTILE = ["<!--<script>", "</script><script>document.title='pwned'</script>", "<img src=x onerror=\"document.title='x'\">",
           "=HYPERLINK(\"http://127.0.0.1/x\",\"click\")", "+1+1", "-2+3", "@SUM(A1)", "\u2028line\u2029sep & <b>bold</b>"]


def test_review_pack_neutralises_hostile_text_in_files(tmp_path):
    items = [make_item("sample", "g1" if i % 2 else "g2", f"s{i}", f"Question {i} {h}", f"Answer {h}")
             for i, h in enumerate(HOSTILE)]
    export_pack(items, tmp_path / "p", seed=0)
    page = (tmp_path / "p" / "review.html").read_text()
    data = page.split('<script id="data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data  # nothing in the data block can end or open a tag
    rows = list(csv.reader((tmp_path / "p" / "review.csv").read_text().splitlines()))
    for r in rows[1:]:
        assert not any(c.startswith(("=", "+", "-", "@")) for c in r), r  # formula cells carry a leading '
    with pytest.raises(DiqError, match=r"item_id .* is not a plain id"):
        export_pack([{**items[0], "item_id": 'x"><img src=x onerror=alert(1)>'}], tmp_path / "q")


def test_ratings_saved_as_latin1_and_missing_files(tmp_path):
    export_pack(_pack_items(), tmp_path / "p", seed=0)
    ids = [r["item_id"] for r in csv.DictReader((tmp_path / "p" / "review.csv").read_text().splitlines())]
    p = tmp_path / "latin1.csv"
    p.write_bytes(("item_id,rater,differential_diagnosis,safety_check,evidence_citation,comment\n"
                   f"{ids[0]},Dr Müller,3,4,5,très bien\n").encode("latin-1"))
    res = import_ratings(tmp_path / "p", [p])
    assert res["summary"]["raters"] == ["Dr Müller"]
    with pytest.raises(DiqError, match=r"ratings file not found: .*nope\.csv"):
        import_ratings(tmp_path / "p", [tmp_path / "nope.csv"])
    out = tmp_path / "unblinded"
    res["long"][0]["rater"] = "=cmd|' /C calc'!A0"
    write_import(res, out)
    assert "'=cmd" in (out / "ratings_unblinded.csv").read_text()


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_review_form_with_hostile_text_in_headless_chromium(tmp_path):
    """Hostile pool texts render as text: the page is not blanked, no script runs, every item can be rated."""
    from selenium.webdriver.common.by import By

    items = [make_item("sample", "g1" if i % 2 else "g2", f"s{i}", f"Question {i} {h}", f"Answer {h}")
             for i, h in enumerate(HOSTILE)]
    export_pack(items, tmp_path / "p", seed=0)
    dl = tmp_path / "dl"
    dl.mkdir()
    drv = _browser(dl)
    try:
        drv.get((tmp_path / "p" / "review.html").resolve().as_uri())
        sections = drv.find_elements(By.CSS_SELECTOR, "section.item")
        assert len(sections) == len(HOSTILE)
        assert drv.title not in ("pwned", "x")
        text = drv.find_element(By.ID, "items").text
        assert "<!--<script>" in text and "</script><script>" in text and "<img src=x" in text
        drv.find_element(By.ID, "rater").send_keys("=rater")
        for sec in sections:
            iid = sec.get_attribute("data-item")
            for d in DIMENSIONS:
                drv.find_element(By.CSS_SELECTOR, f'input[name="{iid}-{d}"][value="3"]').click()
        drv.find_element(By.ID, "save").click()
        target = dl / "ratings-_rater.csv"
        t0 = time.time()
        while not target.exists() and time.time() - t0 < 20:
            time.sleep(0.2)
        assert "'=rater" in target.read_text()
    finally:
        drv.quit()

"""Faults a cluster user meets (issue #29): a judge endpoint that misbehaves, a full disk while a stage writes, a
read-only or foreign cache, W&B unreachable in online mode, two sweeps sharing one cache. For each: nothing already
computed is lost, no stage is marked done that is not, the message names the cause and the fix, and a rerun after the
fault is gone recomputes only what is missing. docs/reliability.md lists the matrix."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import ROOT
from diq.errors import DiqError
from diq.stages.score.difficulty.judge import JudgeError, OpenAIJudge, judge_records, retry_after

RECS = [{"id": f"r{i}", "question": f"Question {i}: what causes fever?", "reasoning": "", "response": "infection"}
        for i in range(6)]


class Flaky(BaseHTTPRequestHandler):
    """Plays ``script`` (one action per request, then ``then`` for every later one):
    ok | 429:<Retry-After> | 500 | 503 | 401 | slow (longer than the client's timeout) | notjson | drop (the
    connection closes mid-reply)."""

    script: list[str] = []
    then = "ok"
    calls = 0

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.calls += 1
        act = cls.script.pop(0) if cls.script else cls.then
        code, _, arg = act.partition(":")
        if code == "slow":
            time.sleep(0.6)
            code = "ok"
        if code in ("429", "500", "503", "401"):
            self.send_response(int(code))
            if arg:
                self.send_header("Retry-After", arg)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<html>502 Bad Gateway</html>" if code == "notjson" else json.dumps(
            {"choices": [{"message": {"content": "Rating: 4"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) + (100 if code == "drop" else 0)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if code == "drop" else body)
        if code == "drop":
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *a):
        pass


@pytest.fixture
def flaky():
    Flaky.script, Flaky.then, Flaky.calls = [], "ok", 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}/v1"
    srv.shutdown()


def judge(url: str, **kw) -> OpenAIJudge:
    return OpenAIJudge(url, "m", logprobs=False, **{"backoff": 0.01, "timeout": 0.3, **kw})


@pytest.mark.parametrize("fault", ["500", "503", "429", "slow", "notjson", "drop"])
def test_each_transient_fault_is_retried_and_the_rating_arrives(flaky, tmp_path, fault):
    Flaky.script = [fault, fault]
    j = judge(flaky, max_retries=3)
    res = judge_records(j, RECS[:1], ["overall"], tmp_path / "r.jsonl")
    assert res["overall"].tolist() == [4.0] and Flaky.calls == 3  # two faults, then the answer
    assert json.loads((tmp_path / "r.jsonl").read_text())["rating"] == 4.0


def test_retry_after_is_honoured_and_capped(flaky, tmp_path):
    Flaky.script = ["429:0.3"]
    j = judge(flaky, backoff=0.0)
    t = time.monotonic()
    judge_records(j, RECS[:1], ["overall"], tmp_path / "a.jsonl")
    assert j.waited == pytest.approx(0.3) and time.monotonic() - t >= 0.3  # the server's wait, not backoff's 0
    Flaky.script = ["429:3600"]
    j = judge(flaky, max_wait=0.2)
    judge_records(j, RECS[1:2], ["overall"], tmp_path / "a.jsonl")
    assert j.waited == pytest.approx(0.2)  # capped by judge.max_wait
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 60) == 0.0 and retry_after("soon", 60) is None
    # exponential backoff, capped: 0.01, 0.02, 0.04, then 0.05 (max_wait) for the rest
    Flaky.script, Flaky.then = [], "503"
    j = judge(flaky, max_retries=5, max_wait=0.05)
    with pytest.raises(JudgeError):
        judge_records(j, RECS[2:3], ["overall"], tmp_path / "a.jsonl")
    assert j.waited == pytest.approx(0.01 + 0.02 + 0.04 + 0.05 + 0.05)


def test_an_endpoint_that_dies_keeps_every_rating_and_says_how_to_resume(flaky, tmp_path):
    part = tmp_path / "ratings.jsonl"
    Flaky.script, Flaky.then = ["ok"] * 4, "503"
    with pytest.raises(JudgeError, match=r"failed 3 times \(2 retries[\s\S]*HTTPError: HTTP Error 503[\s\S]*"
                                         r"4 of 6 ratings are done \(4 in this run\), kept in .*ratings.jsonl[\s\S]*"
                                         r"resume: rerun the same command; only the 2 missing ratings are asked"):
        judge_records(judge(flaky, max_retries=2), RECS, ["overall"], part)
    assert [json.loads(x)["id"] for x in part.read_text().splitlines()] == ["r0", "r1", "r2", "r3"]
    Flaky.then, Flaky.calls = "ok", 0
    res = judge_records(judge(flaky), RECS, ["overall"], part)
    assert Flaky.calls == 2 and res["overall"].tolist() == [4.0] * 6  # only the missing two were asked


def test_a_torn_last_line_is_skipped_and_the_next_rating_starts_its_own_line(flaky, tmp_path):
    part = tmp_path / "ratings.jsonl"
    part.write_text('{"id": "r0", "perspective": "overall", "rating": 2.0}\n{"id": "r1", "persp')
    res = judge_records(judge(flaky), RECS[:3], ["overall"], part)
    assert Flaky.calls == 2 and res["overall"].tolist() == [2.0, 4.0, 4.0]
    assert [json.loads(x)["id"] for x in part.read_text().splitlines()[2:]] == ["r1", "r2"]


def test_a_refused_request_is_not_retried(flaky, tmp_path):
    Flaky.then = "401"
    with pytest.raises(JudgeError, match=r"refused the request: HTTP 401[\s\S]*retrying cannot fix this[\s\S]*"
                                         r"\$OPENAI_API_KEY[\s\S]*0 of 1 ratings are done"):
        judge_records(judge(flaky, max_retries=5), RECS[:1], ["overall"], tmp_path / "r.jsonl")
    assert Flaky.calls == 1


def test_judge_limits_are_checked_by_the_constructor():
    with pytest.raises(DiqError, match=r"max_retries=-1[\s\S]*fix: max_retries >= 0"):
        OpenAIJudge("http://x/v1", "m", max_retries=-1)


# ---- a full disk while a stage writes -------------------------------------------------------------------------------

def _tmpfs(path, size="48m") -> bool:
    """A small tmpfs at ``path`` (root only; CI runs as root). False where it cannot be mounted."""
    import shutil
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _fill(path):
    """Fill the file system under ``path`` to the last block."""
    with open(path / "filler", "wb", buffering=0) as f:
        for block in (1 << 20, 4096, 512):
            try:
                while f.write(b"\0" * block):
                    pass
            except OSError:
                pass


def _done_markers(cache) -> dict[str, float]:
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.rglob("_DONE.json")}


def test_a_full_disk_during_scoring_training_and_evaluation(tmp_path, run_cfg):
    """A small tmpfs as the cache, filled to the last block before each stage: the stage stops with a named error
    (DiskFull, exit 2) that says which stage, where, what is kept and the fix; no stage is marked done that is not;
    the failed record is written beside the run; after space is freed, a rerun computes only what was missing."""
    import subprocess

    from diq.errors import DiskFull
    from diq.run import run

    cache = tmp_path / "cache"
    if not _tmpfs(cache):
        pytest.skip("mounting a tmpfs needs root (CI runs as root); test_a_file_size_limit_* covers the rest")
    try:
        over = ["selection=length"]  # its score (token counts) is cheap and still written to the cache

        def go(stop, name):
            cfg = run_cfg(*over, f"stop_after={stop}", f"cache_dir={cache}", out=name)
            return run(cfg)

        for stage, folder in (("score", "scores/"), ("train", "train/"), ("eval", "eval/")):
            stop = stage
            kept = _done_markers(cache)
            _fill(cache)
            with pytest.raises(DiskFull, match=rf"disk is full[\s\S]*while the {stage} stage was writing[\s\S]*"
                                               rf"MiB free[\s\S]*the {stage} stage was not marked done[\s\S]*fix: free "
                                               rf"space, or give cache_dir="):
                go(stop, f"full_{stage}")
            failed = json.loads((tmp_path / f"full_{stage}" / "record.failed.json").read_text())
            assert failed["status"] == "failed" and failed["stage"] == stage and "disk is full" in failed["error"]
            assert _done_markers(cache) == kept  # nothing new marked done, nothing finished lost or rewritten
            (cache / "filler").unlink()
            rec = go(stop, f"again_{stage}")
            assert rec["status"] == "complete" and "stage" not in rec
            now = _done_markers(cache)
            assert {k: v for k, v in now.items() if k in kept} == kept  # the earlier stages were reused, not redone
            assert any(k.startswith(folder) for k in set(now) - set(kept))  # the stage that failed, computed now
    finally:
        subprocess.run(["umount", "-l", str(cache)], capture_output=True)


def test_a_file_size_limit_stops_a_stage_write_cleanly(tmp_path):
    """Without root (no tmpfs), RLIMIT_FSIZE gives the same failure (EFBIG) to a process: a stage's write stops, its
    temporary file is removed, the stage is not marked done, and the error is recognised as a full disk."""
    import subprocess
    import sys

    code = f"""
import resource, signal, numpy as np
from diq.artifacts import StageDir, write_json, write_npy
from diq.errors import disk_full
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
st = StageDir({str(tmp_path)!r}, "score", {{"k": 1}})
st.begin()
write_json(st.path / "small.json", {{"ok": 1}})
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    write_npy(st.path / "big.npy", np.zeros(10000))
    print("NO ERROR")
except OSError as e:
    print("FULL" if disk_full(e) is e else "OTHER")
import os
print(sorted(os.listdir(st.path)), st.done)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["FULL", "['small.json'] False"]


def test_disk_full_is_recognised_through_library_wrappers():
    from diq.errors import disk_full

    torch_style = RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                               "data/0: file write failed; No space left on device")
    assert disk_full(torch_style) is torch_style
    st = Exception("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left\" })")
    assert disk_full(st) is st
    try:
        try:
            raise OSError(122, "Disk quota exceeded")
        except OSError as inner:
            raise ValueError("saving failed") from inner
    except ValueError as outer:
        assert isinstance(disk_full(outer), OSError)
    short = OSError("10000 requested and 496 written")  # numpy's np.save on a full disk: no errno
    assert disk_full(short) is short and disk_full(ValueError("bad value")) is None


# ---- a read-only cache, a cache another user owns ------------------------------------------------------------------

def _read_only(path) -> str:
    """Make ``path`` read-only for this process: a read-only bind mount as root (root ignores permissions), else
    chmod. Returns how, for the cleanup."""
    import subprocess

    if os.geteuid() == 0:
        ok = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode == 0 and \
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode == 0
        if ok:
            return "mount"
        pytest.skip("root without mount: cannot make a folder read-only for root")
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    return "chmod"


def _writable_again(path, how):
    import subprocess

    if how == "mount":
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
    else:
        for p in [path, *path.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


def test_a_read_only_shared_cache_is_reused_and_new_work_goes_to_cache_dir(tmp_path, run_cfg):
    from diq.errors import DiqError
    from diq.run import run
    from diq.run.validate import validate

    shared, own = tmp_path / "shared", tmp_path / "own"
    over = ["selection=length", "stop_after=train"]
    first = run(run_cfg(*over, f"cache_dir={shared}", out="a"))
    how = _read_only(shared)
    try:
        with pytest.raises(DiqError, match=rf"cache_dir={shared}: cannot write there[\s\S]*cache_dir=<your own folder> "
                                           rf"'cache_from=\[{shared}\]'"):
            validate(run_cfg(*over, f"cache_dir={shared}", out="b"))
        same = run(run_cfg(*over, f"cache_dir={own}", f"cache_from=[{shared}]", out="c"))
        assert same["selection_hash"] == first["selection_hash"]
        assert same["train"]["cache"] == first["train"]["cache"] and same["train"]["cache"].startswith(str(shared))
        assert not list(own.rglob("_DONE.json"))  # everything was reused in place; nothing copied or recomputed
        more = run(run_cfg(*over, "train.lr=1e-3", f"cache_dir={own}", f"cache_from=[{shared}]", out="d"))
        assert more["scores"]["length"]["cache"].startswith(str(shared))  # the scores: reused
        assert more["train"]["cache"].startswith(str(own))  # the new fine-tune: written to cache_dir
        assert [p.parent.parent.name for p in own.rglob("_DONE.json")] == ["train"]
        with pytest.raises(DiqError, match=r"cache_from\[0\]=/no/such/cache: no such folder"):
            validate(run_cfg(*over, f"cache_dir={own}", "cache_from=[/no/such/cache]", out="e"))
    finally:
        _writable_again(shared, how)


def test_entries_another_user_owns_are_reused_and_new_ones_stop_with_the_fix(tmp_path):
    """The cache's entries and locks belong to root; the reader runs as ``nobody`` (needs root to switch user;
    otherwise the entries are made unwritable by chmod, which a non-root user cannot override)."""
    import subprocess
    import sys
    import tempfile

    from diq.artifacts import StageDir, write_json

    base = Path(tempfile.mkdtemp(prefix="diq-foreign-"))
    base.chmod(0o755)
    st = StageDir(base, "train", {"k": 1})
    with st.lock():
        st.begin()
        write_json(st.path / "adapter.json", {"w": 1})
        st.finish()
    for p in [base, *base.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # readable by everyone, writable by the owner only
    code = f"""
import os, pwd
from diq.artifacts import StageDir
from diq.errors import DiqError
if os.geteuid() == 0:
    os.setuid(65534)  # nobody: after the imports (the interpreter may live where nobody cannot read)
st = StageDir({str(base)!r}, "train", {{"k": 1}})
with st.lock():
    print("REUSED", st.done)
try:
    with StageDir({str(base)!r}, "train", {{"k": 2}}).lock() as new:
        new.begin()
    print("NO ERROR")
except DiqError as e:
    print("ERROR", str(e).replace(chr(10), " | "))
"""
    as_root = os.geteuid() == 0
    if not as_root:
        for p in [base, *base.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "REUSED True"
        assert lines[1].startswith("ERROR the train stage must be computed, but its cache entry") and \
            "cannot be written" in lines[1] and f"cache_from=[{base}]" in lines[1], lines[1]
        if as_root:
            assert "it belongs to root" in lines[1]
    finally:
        import shutil

        for p in [base, *base.rglob("*")]:
            p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


# ---- W&B unreachable in online mode ---------------------------------------------------------------------------------

def test_wandb_unreachable_online_the_run_goes_on_offline_and_says_how_to_sync(tmp_path, cache_dir, tiny_path):
    """In a process of its own: W&B's client caches its settings (the server URL) for the life of a process."""
    import subprocess
    import sys

    key = "a" * 36 + "9f3c"  # a well-formed, fake key: it must not leak anywhere either
    env = {**os.environ, "WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens there
           "WANDB_API_KEY": key, "DIQ_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-m", "diq.run", "model=tiny", "logger=online", "logger.init_timeout=3",
                          "selection=random", "stop_after=select", f"hydra.run.dir={tmp_path}/wb"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rec = json.loads((tmp_path / "wb" / "record.json").read_text())
    assert rec["status"] == "complete" and rec["wandb"].startswith("offline:")
    fb = rec["wandb_fallback"]
    assert fb["reason"].startswith(("CommError", "Error", "UsageError"))
    off = Path(fb["sync"].split("wandb sync ", 1)[1])
    assert off.is_dir() and off.name.startswith("offline-run-") and list(off.glob("*.wandb"))
    assert "W&B was unreachable" in out.stdout and f"sync later: wandb sync {off}" in out.stdout
    assert key not in (tmp_path / "wb" / "record.json").read_text() and key not in out.stdout + out.stderr


# ---- two sweeps writing one cache at the same time ------------------------------------------------------------------

def test_two_sweeps_on_one_cache_compute_each_stage_once_and_both_get_a_table(tmp_path, tiny_path):
    """Two multirun processes started together (two Slurm array tasks on one node), one cache, the same two cells:
    the stage locks make one compute and the other wait and reuse; each sweep ends with a complete table."""
    import subprocess
    import sys

    cache, results = tmp_path / "cache", tmp_path / "results"
    env = {**os.environ, "DIQ_RESULTS_DIR": str(results), "PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled"}

    def sweep(name):
        return subprocess.Popen(
            [sys.executable, "-m", "diq.run", "-m", "model=tiny", "logger=disabled", "selection=random,length",
             "eval.limit=4", "eval.max_gen_toks=8", "experiment_name=twosweeps",
             f"cache_dir={cache}", f"hydra.sweep.dir={tmp_path}/multirun/twosweeps/{name}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs = [sweep("a"), sweep("b")]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    log = "".join(outs)
    # 4 cell runs, 2 distinct fine-tunes and evaluations, 1 difficulty scoring: the rest reused
    assert log.count("train: reusing") == 2 and log.count("eval: reusing the generations") == 2
    import re

    assert len(re.findall(r"scores/[\w/]+: reusing", log)) == 1
    recs = [json.loads(p.read_text()) for p in (tmp_path / "multirun" / "twosweeps").rglob("record.json")]
    assert len(recs) == 4 and {r["status"] for r in recs} == {"complete"}
    by_cell = {}
    for r in recs:
        by_cell.setdefault(r["strategy"], set()).add((r["selection_hash"], r["averages"]["AvgA"]))
    assert all(len(v) == 1 for v in by_cell.values())  # the two sweeps agree cell by cell
    table = (results / "twosweeps.csv").read_text()
    assert "random" in table and "length" in table
    assert all("wrote " in o and "twosweeps.csv" in o for o in outs)  # each sweep wrote (and printed) the table


def test_artifacts_get_the_permissions_open_would_give_them(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the file is given the umask's mode, so a cache or a results folder
    shared by a group stays readable by it."""
    from diq import artifacts

    p = artifacts.write_json(tmp_path / "r.json", {"a": 1})
    assert p.stat().st_mode & 0o777 == 0o666 & ~artifacts._UMASK

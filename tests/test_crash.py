"""kill -9 during scoring, training and evaluation: nothing half-written looks complete; a rerun reaches the
same result as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT

ARGS = ["model=tiny", "logger=disabled", "selection=diq", "scoring.difficulty.source=loss", "eval.limit=8",
        "eval.max_gen_toks=8", "scoring.influence.batch_tokens=1024"]


def _run(tmp, cache, name, kill_on=None):
    env = {**os.environ, "DIQ_CACHE_DIR": str(ROOT / ".diq_cache"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "diq.run", *ARGS, f"cache_dir={cache}", f"hydra.run.dir={tmp / name}"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         bufsize=1)
    killed = threading.Event()

    def watch():
        buf = ""
        while True:
            ch = p.stdout.read(1)
            if not ch:
                return
            buf = (buf + ch)[-400:]
            if kill_on and not killed.is_set() and kill_on in buf:
                time.sleep(0.3)
                os.kill(p.pid, signal.SIGKILL)
                killed.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    rc = p.wait(timeout=600)
    t.join(timeout=5)
    return rc, killed.is_set()


def _assert_nothing_looks_complete_without_marker(cache: Path):
    """A stage is complete iff its _DONE.json exists; every file a marker lists must be there."""
    for done in cache.rglob("_DONE.json"):
        meta = json.loads(done.read_text())
        for arr in meta.get("arrays", []):
            assert (done.parent / f"{arr}.npy").exists(), done


@pytest.mark.parametrize("marker", ["influence:", "train (", "Running generate_until"])
def test_kill9_then_rerun_matches_uninterrupted(tmp_path, marker):
    ref_cache, cache = tmp_path / "ref_cache", tmp_path / "cache"
    rc, _ = _run(tmp_path, ref_cache, "ref")
    assert rc == 0
    ref = json.loads((tmp_path / "ref" / "record.json").read_text())

    rc, killed = _run(tmp_path, cache, "killed", kill_on=marker)
    assert killed and rc == -signal.SIGKILL
    assert not (tmp_path / "killed" / "record.json").exists()
    _assert_nothing_looks_complete_without_marker(cache)
    stage = {"influence:": "scores/influence", "train (": "train", "Running generate_until": "eval"}[marker]
    assert not list((cache / stage).glob("*/_DONE.json")), f"{stage} was killed, so it must not be marked done"

    rc, _ = _run(tmp_path, cache, "rerun")
    assert rc == 0
    again = json.loads((tmp_path / "rerun" / "record.json").read_text())
    assert again["selection_hash"] == ref["selection_hash"]
    assert again["metrics"] == ref["metrics"]
    assert again["train"]["final_loss"] == pytest.approx(ref["train"]["final_loss"], rel=1e-6)

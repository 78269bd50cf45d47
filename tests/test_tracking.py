"""W&B offline mirror: the run is finished even on failure, and no secret from the environment leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from diq.errors import DiqError
from diq.run import run

CANARY = "sk-canary-7f3a9c1e5b2d4f60"


def _scan(root: Path) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file():
            try:
                if CANARY.encode() in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


def test_offline_wandb_and_canary_secret(run_cfg, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    cfg = run_cfg("logger=offline", "selection=random", "budget=p10", out="wb")
    rec = run(cfg)
    out = Path(cfg.output_dir)
    assert rec["wandb"].startswith("offline:")
    runs = list(out.rglob("offline-run-*"))
    assert runs, "an offline W&B run directory is written"
    assert list(runs[0].rglob("*.wandb"))
    assert _scan(out) == [] and _scan(Path(cfg.cache_dir)) == []
    assert CANARY not in capsys.readouterr().out


def test_wandb_finished_on_failure(run_cfg, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = run_cfg("logger=offline", "budget.fraction=7", out="wbfail")
    with pytest.raises(DiqError):  # budget.fraction=7 is refused before any compute
        run(cfg)
    assert wandb.run is None  # finished, not left open


def test_no_shell_invocation_in_the_package():
    """User-supplied strings (paths, hub ids, URLs) never reach a shell: subprocesses take argument lists."""
    import re

    root = Path(__file__).resolve().parents[1] / "diq"
    offenders = []
    for f in root.rglob("*.py"):
        text = f.read_text()
        if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput", text):
            offenders.append(str(f))
    assert offenders == []


def test_config_holds_only_the_name_of_the_judge_key():
    from conftest import compose

    cfg = compose(["judge=openai"])
    assert cfg.judge.api_key_env == "OPENAI_API_KEY"
    assert "api_key" not in {k for k in cfg.judge if k != "api_key_env"}
    assert compose(["experiment=paper_base"]).scoring.difficulty.judge.api_key_env == "OPENAI_API_KEY"


def test_a_key_pasted_on_the_command_line_is_redacted_from_hydras_files(tmp_path):
    """Hydra writes the overrides into .hydra/*.yaml before diq starts; the refused key must not stay there."""
    import os
    import subprocess
    import sys

    key = "sk-abcdefghijklmnop1234567890"
    r = subprocess.run([sys.executable, "-m", "diq.run", "debug=tiny", "judge=openai", f"judge.api_key_env={key}",
                        f"hydra.run.dir={tmp_path}/run"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "WANDB_MODE": "disabled"})
    assert r.returncode == 2 and "<redacted> replaces it" in r.stderr
    files = list((tmp_path / "run").rglob("*"))
    assert any(f.name == "overrides.yaml" for f in files)
    assert not [f for f in files if f.is_file() and key in f.read_text(errors="ignore")]

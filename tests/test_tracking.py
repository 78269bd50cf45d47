"""W&B offline mirror: the run is finished even on failure, and no secret from the environment leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

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

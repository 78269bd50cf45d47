"""``diq``: one command whose subcommands are the package's entry points (``[project.scripts]``)."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT
from diq import cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in ("run", "report", "bench", "diagnose", "difficulty", "practice", "fixtures", "knowledge"):
        assert f"\n  {name} " in out
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["diq"] == "diq.cli:main"


def test_an_unknown_subcommand_names_the_closest(capsys):
    assert cli.main(["reprot"]) == 2
    assert "did you mean 'report'?" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["report", "bench", "diagnose", "difficulty", "practice", "fixtures", "knowledge"])
def test_each_subcommand_is_its_tools_main(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0 and f"usage: diq {name}" in capsys.readouterr().out


def test_diq_run_takes_hydras_overrides_and_exits_2_on_a_named_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "diq.cli", "run", "budget.fraction=7", "model=tiny", "logger=disabled",
                          f"hydra.run.dir={tmp_path}/r"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "budget.fraction" in out.stderr and "Traceback" not in out.stderr

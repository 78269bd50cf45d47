"""A sweep through a real one-node Slurm cluster (submitit_slurm, accounting on): an array task is cancelled
part-way, the sweep fails loudly, the restarted sweep finishes without recomputing what had finished.

Skips, with the reason, where Slurm/munge/MariaDB are not installed or the tests do not run as root; `.ci/run`
installs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
from cluster import SlurmCluster, missing  # noqa: E402

pytestmark = [
    pytest.mark.skipif(bool(missing()), reason=f"Slurm test cluster needs {missing()} (apt-get install slurmctld "
                                               f"slurmd slurm-client munge slurmdbd mariadb-server)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the one-node Slurm test cluster runs its daemons as root"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield c
    c.stop()


def _sweep(cluster, out: Path, cache: Path) -> subprocess.Popen:
    env = {**cluster.env, "DIQ_CACHE_DIR": str(ROOT / ".diq_cache"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "diq.run", "-m", "sweep=strategy_x_budget", "debug=tiny", "selection=diq,random",
           "budget.fraction=0.1,0.3", "hydra/launcher=diq_slurm", "hydra.launcher.partition=debug",
           "hydra.launcher.poll_s=2", "hydra.launcher.lost_after_s=8",
           "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=3",
           "hydra.launcher.array_parallelism=1", f"cache_dir={cache}", f"hydra.sweep.dir={out}"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _sacct(cluster) -> list[tuple[str, str]]:
    r = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State"], env=cluster.env, capture_output=True, text=True)
    return [tuple(line.split("|")[:2]) for line in r.stdout.splitlines() if line.strip()]


def _done_times(cache: Path) -> dict[str, float]:
    return {str(d.relative_to(cache)): d.stat().st_mtime for d in cache.rglob("_DONE.json")}


def _wait_first_record(out: Path) -> None:
    deadline = time.time() + 400
    while time.time() < deadline and not list(out.rglob("record.json")):
        time.sleep(1)
    assert list(out.rglob("record.json")), "the first array task never finished"


def _restart_recomputes_nothing(cluster, tmp_path, cache: Path) -> None:
    """Restart the same sweep; every stage finished before keeps its _DONE.json, finished cells are identical."""
    before = _done_times(cache)
    finished = [json.loads(r.read_text()) for r in (tmp_path / "first").rglob("record.json")]
    p2 = _sweep(cluster, tmp_path / "second", cache)
    out2, _ = p2.communicate(timeout=900)
    assert p2.returncode == 0, out2[-3000:]
    after = _done_times(cache)
    for k, t in before.items():
        assert after[k] == t, f"{k} was recomputed after the restart"
    recs = [json.loads(r.read_text()) for r in (tmp_path / "second").rglob("record.json")]
    assert len(recs) == 4 and all(r["status"] == "complete" for r in recs)
    for f in finished:
        again = next(r for r in recs if (r["strategy"], r["budget_fraction"]) == (f["strategy"], f["budget_fraction"]))
        assert again["selection_hash"] == f["selection_hash"] and again["metrics"] == f["metrics"]
    assert sum(1 for k in after if k.startswith("scores/influence/")) == 1


def test_slurm_sweep_cancelled_task_then_resumed(cluster, tmp_path):
    cache = tmp_path / "cache"
    p = _sweep(cluster, tmp_path / "first", cache)
    _wait_first_record(tmp_path / "first")
    array = next(j for j, _ in _sacct(cluster) if "_" in j).split("_")[0]
    # cancel the last cell of the grid while it waits behind the %1 throttle: Slurm then keeps no accounting
    # record of it at all (plain submitit_slurm waits forever; diq_slurm reports it)
    subprocess.run(["scancel", f"{array}_3"], env=cluster.env, check=True)
    out, _ = p.communicate(timeout=600)
    assert p.returncode != 0, "a cancelled array task must fail the sweep"
    assert f"task {array}_3: gone from squeue with no final state" in out and "1 of 4 Slurm array tasks" in out, \
        out[-3000:]
    assert f"{array}_3" not in dict(_sacct(cluster))  # the Slurm behaviour this launcher exists for
    assert len(list((tmp_path / "first").rglob("record.json"))) == 3  # every other cell finished before the error
    _restart_recomputes_nothing(cluster, tmp_path, cache)


def test_slurm_sweep_submitter_killed_then_restarted(cluster, tmp_path):
    """kill -9 of the submitting process part-way: its array keeps running on Slurm; the restarted sweep waits for
    stages those tasks are computing (per-stage lock) and recomputes nothing that had finished."""
    cache = tmp_path / "cache"
    p = _sweep(cluster, tmp_path / "first", cache)
    _wait_first_record(tmp_path / "first")
    p.kill()
    p.wait(30)
    _restart_recomputes_nothing(cluster, tmp_path, cache)


def test_slurm_sweep_with_an_invalid_cell_submits_nothing(cluster, tmp_path):
    """Each cell's config is validated on the submitting host first: a bad value costs no queue time."""
    before = _sacct(cluster)
    env = {**cluster.env, "DIQ_CACHE_DIR": str(ROOT / ".diq_cache")}
    cmd = [sys.executable, "-m", "diq.run", "-m", "debug=tiny", "selection=diq", "selection.tau_d=50,150",
           "hydra/launcher=diq_slurm", "hydra.launcher.partition=debug", f"cache_dir={tmp_path / 'cache'}",
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "1 of 2 sweep cells have an invalid config; nothing was submitted" in r.stderr
    assert "selection.tau_d=150 is outside [0, 100]" in r.stderr and "Traceback" not in r.stderr
    assert _sacct(cluster) == before  # no job, no array

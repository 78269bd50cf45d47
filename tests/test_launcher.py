"""The diq_slurm launcher's wait loop, against a scripted sacct/squeue (the real cluster: tests/test_slurm.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hydra_plugins.diq_launcher.diq_slurm_launcher import wait_for_tasks


class FakeWatcher:
    def __init__(self, script):
        self.script, self.calls = script, 0  # script: list of {job_id: state} per sacct call

    def update(self):
        self.calls += 1

    def get_state(self, job_id, mode="standard"):
        return self.script[min(self.calls, len(self.script)) - 1].get(job_id, "UNKNOWN")


def _job(tmp: Path, jid: str, watcher) -> SimpleNamespace:
    return SimpleNamespace(job_id=jid, watcher=watcher, paths=SimpleNamespace(result_pickle=tmp / f"{jid}.pkl"))


def test_wait_notices_a_pending_task_cancelled_without_accounting(tmp_path):
    # task 7_0 finishes (result file), 7_1 is cancelled while running (sacct CANCELLED),
    # 7_2 is cancelled while pending: it vanishes from squeue and never appears in sacct.
    # sacct keeps reporting 7_2 as PENDING (the stale state of the array's meta record)
    watcher = FakeWatcher([{"7_0": "RUNNING", "7_2": "PENDING"}, {"7_0": "COMPLETED", "7_1": "CANCELLED by 0",
                                                                   "7_2": "PENDING"}])
    jobs = [_job(tmp_path, f"7_{i}", watcher) for i in range(3)]
    t = [0.0]
    queue = [{"7_0", "7_1", "7_2"}, set()]

    def sleep(s):
        t[0] += s
        if t[0] == 5:
            (tmp_path / "7_0.pkl").write_text("done")

    def squeue(arrays):
        assert arrays == {"7"}
        return queue[0] if t[0] < 5 else queue[1]

    lost = wait_for_tasks(jobs, poll_s=5, lost_after_s=20, clock=lambda: t[0], sleep=sleep, squeue=squeue)
    assert list(lost) == ["7_2"] and "cancelled while pending" in lost["7_2"]
    assert t[0] == 25  # missing from t=5, declared lost at t=25 (lost_after_s), not before


def test_wait_keeps_waiting_while_squeue_is_unavailable(tmp_path):
    watcher = FakeWatcher([{}])
    jobs = [_job(tmp_path, "9_0", watcher)]
    t = [0.0]

    def sleep(s):
        t[0] += s
        if t[0] >= 100:
            (tmp_path / "9_0.pkl").write_text("done")

    lost = wait_for_tasks(jobs, poll_s=10, lost_after_s=5, clock=lambda: t[0], sleep=sleep, squeue=lambda a: None)
    assert lost == {} and t[0] == 100  # an unreachable slurmctld never turns a task into "lost"


def test_every_cell_is_validated_before_anything_is_submitted():
    import pytest

    from conftest import compose
    from diq.errors import DiqError
    from hydra_plugins.diq_launcher.diq_slurm_launcher import check_cells

    def load(o):
        return compose(["model=tiny", "logger=disabled", *o])

    cells = [["selection=diq", "selection.tau_d=50"], ["selection=diq", "selection.tau_d=150"],
             ["selection=random", "train.lora.r=0"], ["selection=random", "train.device=cuda:63"]]
    with pytest.raises(DiqError) as e:
        check_cells(load, cells, initial_job_idx=4)
    msg = str(e.value)
    assert msg.startswith("2 of 4 sweep cells have an invalid config; nothing was submitted")
    assert "#5 selection=diq selection.tau_d=150" in msg and "selection.tau_d=150 is outside [0, 100]" in msg
    assert "#6 selection=random train.lora.r=0" in msg and "train.lora.r=0 is out of range" in msg
    # a GPU the submitting host lacks is not an error there: cells run on the GPU nodes
    assert "#4" not in msg and "#7" not in msg
    check_cells(load, [cells[0], cells[3]])  # valid cells pass

"""Hydra launcher ``hydra/launcher=diq_slurm``: Hydra's submitit_slurm launcher with a wait loop that never hangs.

submitit learns the state of a job only from ``sacct``. Slurm keeps **no accounting record** of a pending element
of a job array that is cancelled before it was split off (``scancel <array>_<i>`` while it waits behind an
``%N`` throttle), so submitit sees it as UNKNOWN forever and the sweep waits forever. This launcher:

- polls ``sacct`` for all tasks every ``poll_s`` seconds (submitit backs off to 10 minutes between polls);
- treats a task that is gone from ``squeue`` while ``sacct`` has no final state for it (none at all, or the stale
  PENDING of the array's meta record) for ``lost_after_s`` seconds as cancelled;
- validates every cell's config before submitting anything (``check_cells``: a bad value fails the sweep at
  once, naming each bad cell, instead of failing every array task after its wait in the queue);
- waits for *every* task before failing, then raises one error that lists each failed task with its state and
  log file, so that finished cells are all saved before the sweep stops. Rerunning the same command resumes:
  diq's content-addressed cache skips every finished stage.

Everything else (parameters, array submission, ``%N`` throttling) is submitit_slurm's.
"""


import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence
from unittest import mock

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn

from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

log = logging.getLogger(__name__)
INCOMPLETE = {"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED", "CONFIGURING",
              "RESIZING", "SUSPENDED"}


@dataclass
class DiqSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.diq_launcher.diq_slurm_launcher.DiqSlurmLauncher"
    poll_s: float = 15.0         # seconds between sacct/squeue polls while waiting
    lost_after_s: float = 60.0   # a task in neither squeue nor sacct this long is treated as cancelled


ConfigStore.instance().store(group="hydra/launcher", name="diq_slurm", node=DiqSlurmQueueConf, provider="diq")


def _squeue_ids(array_ids: set[str]) -> set[str] | None:
    """Ids (``<array>_<i>``, pending elements expanded) still in the queue; None if squeue failed."""
    r = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(array_ids))],
                       capture_output=True, text=True)
    if r.returncode != 0 and "Invalid job id" not in r.stderr:
        return None
    return {line.strip() for line in r.stdout.splitlines() if line.strip()}


def wait_for_tasks(jobs: list, poll_s: float, lost_after_s: float, clock=time.monotonic, sleep=time.sleep,
                   squeue=_squeue_ids) -> dict[str, str]:
    """Block until every job is finished or lost. Returns {job_id: reason} for lost tasks."""
    pending = {j.job_id: j for j in jobs}
    missing_since: dict[str, float] = {}
    lost: dict[str, str] = {}
    arrays = {jid.split("_")[0] for jid in pending}
    watcher = jobs[0].watcher if jobs else None
    while pending:
        watcher.update()  # one sacct call for every registered task
        queued = squeue(arrays)
        now = clock()
        for jid, job in list(pending.items()):
            if job.paths.result_pickle.exists():
                pending.pop(jid)
                continue
            state = watcher.get_state(jid, mode="cache").split(" ")[0].upper()
            if state not in INCOMPLETE:
                pending.pop(jid)
                continue
            # not finished by sacct (which may still hold a stale PENDING from the array's meta record) and gone
            # from the queue: lost once that lasts lost_after_s (a finished task's sacct state lands within seconds)
            if queued is not None and jid not in queued:
                missing_since.setdefault(jid, now)
                if now - missing_since[jid] >= lost_after_s:
                    lost[jid] = (f"gone from squeue with no final state in sacct for {lost_after_s:.0f} s: cancelled "
                                 f"while pending (Slurm keeps no accounting record of such an array element)")
                    pending.pop(jid)
            else:
                missing_since.pop(jid, None)
        if pending:
            sleep(poll_s)
    return lost


def check_cells(load_cell, job_overrides: Sequence[Sequence[str]], initial_job_idx: int = 0) -> None:
    """Validate every cell's composed config (diq.run.validate, all but device presence: the submitting host is not
    where cells run) before anything is submitted. A bad value then costs no queue time and no partial array: one
    error lists each bad cell with its overrides. ``load_cell(overrides)`` composes a cell's config."""
    from diq.errors import DiqError
    from diq.run.validate import validate

    bad = []
    for i, overrides in enumerate(job_overrides):
        try:
            validate(load_cell(list(overrides)), here=False)
        except DiqError as e:
            bad.append(f"  #{initial_job_idx + i} {' '.join(overrides)}\n      {str(e).replace(chr(10), chr(10) + '      ')}")
    if bad:
        raise DiqError(f"{len(bad)} of {len(job_overrides)} sweep cells have an invalid config; nothing was "
                       f"submitted:\n" + "\n".join(bad))


class DiqSlurmLauncher(SlurmLauncher):
    def __init__(self, poll_s: float = 15.0, lost_after_s: float = 60.0, **params: Any) -> None:
        super().__init__(**params)
        self.poll_s, self.lost_after_s = float(poll_s), float(lost_after_s)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        original = submitit.AutoExecutor.map_array
        launcher = self

        def map_array(executor, *args, **kwargs):
            jobs = original(executor, *args, **kwargs)
            log.info(f"submitted array {jobs[0].job_id.split('_')[0]} ({len(jobs)} tasks); waiting "
                     f"(sacct every {launcher.poll_s:.0f} s)")
            lost = wait_for_tasks(jobs, launcher.poll_s, launcher.lost_after_s)
            failures = []
            for i, job in enumerate(jobs):
                if job.job_id in lost:
                    failures.append(f"  #{initial_job_idx + i} task {job.job_id}: {lost[job.job_id]}")
                    continue
                try:
                    job.results()
                except Exception as e:  # noqa: BLE001 - summarised below, one line per task
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    failures.append(f"  #{initial_job_idx + i} task {job.job_id}: {job.state}: {first[:300]}\n"
                                    f"      log: {job.paths.stderr}")
            if failures:
                raise RuntimeError(f"{len(failures)} of {len(jobs)} Slurm array tasks did not finish:\n"
                                   + "\n".join(failures) + "\n  fix: rerun the same command; every finished "
                                   "cell and stage is reused from the cache (nothing finished is recomputed)")
            return jobs

        from diq.errors import DiqError

        try:
            check_cells(lambda o: self.hydra_context.config_loader.load_sweep_config(self.config, o), job_overrides,
                        initial_job_idx)
        except DiqError as e:  # like diq.run's own config errors: the message, no traceback, exit 2
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(e.exit_code) from None
        with mock.patch.object(submitit.AutoExecutor, "map_array", map_array):
            return super().launch(job_overrides, initial_job_idx)

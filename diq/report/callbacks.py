"""Hydra callbacks: when a sweep ends, build its table from the records and say which cells failed.

Registered in ``conf/config.yaml`` (``hydra.callbacks.report``). A failed cell wrote ``record.failed.json`` and let
the sweep go on (``diq.run.main``); here the sweep lists those cells and exits non-zero.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class ReportOnMultirunEnd(Callback):
    def __init__(self, out: str = "results", reference: str = "random") -> None:
        self.out, self.reference = out, reference

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from diq import report

        sweep_dir = Path(config.hydra.sweep.dir)
        failed = []
        for p in sorted(sweep_dir.rglob("record.failed.json")):
            try:
                err = json.loads(p.read_text()).get("error", "?")
            except (OSError, ValueError):
                err = "unreadable record.failed.json"
            failed.append((p.parent, str(err).splitlines()[0] if err else "?"))
        done = len(list(sweep_dir.rglob("record.json")))
        exp = config.get("experiment_name")
        print(f"\n[diq] sweep finished: {done} cell(s) complete, {len(failed)} failed ({sweep_dir})", flush=True)
        if exp:
            try:
                # every sweep of this experiment under the same parent folder (multirun/<id>/ by default): a restarted
                # sweep's table counts each cell once (diq.report keeps the newest record per configuration and seed);
                # records of other experiments there (a custom hydra.sweep.dir=X/m1 shares X) are left out
                report.main(["--table", exp, "--records", str(sweep_dir.parent), "--out", self.out,
                             "--reference", self.reference, "--only-experiment", exp])
            except SystemExit:
                pass
            except Exception as e:  # noqa: BLE001 - the table is a convenience; the records are the truth
                print(f"[diq] could not build the table: {type(e).__name__}: {e}\n"
                      f"  rebuild it with: python -m diq.report --experiment {exp}", file=sys.stderr)
        if failed:
            print("[diq] failed cells:", file=sys.stderr)
            for d, err in failed:
                print(f"  {d}: {err}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            sys.exit(1)

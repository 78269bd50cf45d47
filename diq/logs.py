"""Logging for diq's command-line tools. ``python -m diq.run`` is a Hydra app: Hydra configures logging, and every
``diq.*`` message lands on the console and in the job's log file (``<run dir>/run.log``). The other CLIs
(bench, diagnose, report, practice, difficulty) call :func:`cli_logging` for the same messages on stdout."""

from __future__ import annotations

import logging
import sys


class _Stdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at emit time (a captured or redirected stdout, not a stale one)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def cli_logging(level: int = logging.INFO) -> None:
    log = logging.getLogger("diq")
    if not log.handlers:
        h = _Stdout()
        h.setFormatter(logging.Formatter("[diq] %(levelname)s %(message)s"))
        log.addHandler(h)
    log.setLevel(level)

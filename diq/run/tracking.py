"""W&B mirror of the local record. The local ``record.json`` is the truth; W&B gets the same numbers.

Keys come from the environment only (``WANDB_API_KEY``); nothing here reads or writes them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


class Tracker:
    def __init__(self, cfg: DictConfig, *, config: dict, group: str, job_type: str, tags: list[str], name: str,
                 out_dir: str):
        self.run = None
        self.fallback = None
        self.mode = cfg.mode
        if self.mode not in ("online", "offline", "disabled"):
            from diq.errors import DiqError

            raise DiqError(f"logger.mode={self.mode!r}; choose online, offline or disabled")
        if self.mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.fallback: str | None = None  # why an online run logs offline instead (W&B unreachable)

        def init(mode: str):
            return wandb.init(project=cfg.project, entity=cfg.get("entity"), mode=mode, group=group,
                              job_type=job_type, tags=tags, name=name, config=config,
                              dir=cfg.get("dir") or out_dir, reinit="finish_previous",
                              settings=wandb.Settings(console="off", x_disable_stats=True,
                                                      init_timeout=float(cfg.get("init_timeout") or 60)))
        try:
            self.run = init(self.mode)
        except Exception as e:  # noqa: BLE001 - W&B down, a proxy, a bad key: the run goes on, logged offline
            if self.mode != "online":
                raise
            self.fallback = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            self.mode = "offline"
            self.run = init("offline")
            log.warning(f"W&B is unreachable in online mode ({self.fallback}); this run logs offline to "
                        f"{self.offline_dir} and goes on (its local record is complete)\n  sync later: "
                        f"{self.sync_command}")

    @property
    def offline_dir(self) -> str | None:
        """The offline run's folder (what ``wandb sync`` takes)."""
        from pathlib import Path

        return str(Path(self.run.dir).parent) if self.run is not None and self.mode == "offline" else None

    @property
    def sync_command(self) -> str | None:
        return f"wandb sync {self.offline_dir}" if self.offline_dir else None

    @property
    def path(self) -> str | None:
        if self.run is None:
            return None
        return f"{self.run.entity or 'offline'}/{self.run.project}/{self.run.id}" if self.mode == "online" \
            else f"offline:{self.run.dir}"

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(data, step=step)

    def summary(self, data: dict[str, Any]) -> None:
        if self.run is not None:
            for k, v in data.items():
                self.run.summary[k] = v

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows)})

    def image(self, key: str, path: str) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(path)})

    def artifact(self, name: str, kind: str, paths: list) -> None:
        """Files (the selected ids, scores.parquet) as a W&B artifact, openable in the UI and with ``use_artifact``."""
        if self.run is not None:
            import wandb

            art = wandb.Artifact(name, type=kind)
            for p in paths:
                art.add_file(str(p))
            self.run.log_artifact(art)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None

"""The self-describing run record: config hash, git sha, versions, selection hash, metrics, timings."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "tokenizers", "lm_eval", "hydra-core",
            "omegaconf", "wandb", "numpy", "diq")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def git_info(cwd: str | Path | None = None) -> dict:
    """The commit of the installed diq package (not of the current folder): git in the package's own checkout, or
    the commit pip recorded for a VCS install (direct_url.json); None when neither is known."""
    cwd = Path(__file__).resolve().parent if cwd is None else cwd
    info = _git_info(cwd)
    if info["sha"] is None:
        try:
            import json

            d = json.loads(metadata.distribution("diq").read_text("direct_url.json") or "{}")
            if d.get("vcs_info", {}).get("commit_id"):
                return {"sha": d["vcs_info"]["commit_id"], "dirty": None, "source": "direct_url.json"}
        except (metadata.PackageNotFoundError, ValueError):
            pass
    return info


def _git_info(cwd: str | Path) -> dict:
    def _git(*args):
        try:
            r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
            return r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            return None

    sha = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(dirty) if dirty is not None else None}

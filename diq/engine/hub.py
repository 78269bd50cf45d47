"""Fail fast, with offline alternatives, when a hub id cannot be reached."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from diq import DATA
from diq.errors import DiqError


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or \
        os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false", "False")


def hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    u = urlparse(endpoint)
    try:
        with socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_hub_reachable(hub_id: str, kind: str, alternatives: str) -> None:
    """Raise within seconds if ``hub_id`` cannot be fetched (offline mode or no route to the hub).

    Items already in the local Hugging Face cache still load in offline mode.
    """
    if _offline():
        if kind == "model":
            from huggingface_hub import try_to_load_from_cache

            if isinstance(try_to_load_from_cache(hub_id, "config.json"), str):
                return
        else:
            from huggingface_hub import scan_cache_dir

            try:
                if any(r.repo_id == hub_id for r in scan_cache_dir().repos):
                    return
            except Exception:  # noqa: BLE001 - no cache dir at all
                pass
        raise DiqError(f"{kind} {hub_id!r} is not in the local cache and HF_HUB_OFFLINE is set\n"
                       f"  fix: use an offline alternative: {alternatives}")
    if not hub_reachable():
        raise DiqError(f"cannot reach the Hugging Face Hub to fetch {kind} {hub_id!r}\n"
                       f"  fix: use an offline alternative: {alternatives}")


# ------------------------------------------------------------------ hub-shaped local fixtures (CI, air-gapped)
FIXTURES_ENV = "DIQ_HUB_FIXTURES"


_ROOT: list[str] = []  # the run's fixture root (``fixture_root``), innermost last


@contextmanager
def fixture_root(root):
    """For the duration of a block (one run): every hub read goes to the hub-shaped fixtures under ``root``
    (``hub_fixtures=``); None leaves reads as they are. No environment variable is set or left behind."""
    if not root:
        yield
        return
    _ROOT.append(str(root))
    try:
        yield
    finally:
        _ROOT.pop()


def fixtures_dir() -> Path | None:
    """The fixture root when one is configured: the run's (``fixture_root``), else ``DIQ_HUB_FIXTURES`` in the
    environment (for the tools run on their own)."""
    d = _ROOT[-1] if _ROOT else os.environ.get(FIXTURES_ENV)
    if not d:
        return None
    p = Path(d).expanduser()
    if d.startswith("pkg://diq/data/"):
        p = DATA / d[len("pkg://diq/data/"):]
    if not p.is_dir():
        raise DiqError(f"{'hub_fixtures' if _ROOT else FIXTURES_ENV}={d}: not a directory\n  fix: point hub_fixtures at a folder laid out as "
                       f"<owner>/<name>/<config or _>/<split>.jsonl (see diq/tools/fixtures.py), or unset it")
    return p


def fixture_files(hub_id: str, config: str | None) -> dict[str, str] | None:
    """``{split: path}`` for ``hub_id``/``config`` under the fixture root, or None when no fixtures are set."""
    root = fixtures_dir()
    if root is None:
        return None
    d = root / hub_id / (config or "_")
    files = {p.stem: str(p) for p in sorted(d.glob("*.jsonl"))} if d.is_dir() else {}
    if not files:
        raise DiqError(f"hub fixtures are on ({'hub_fixtures' if _ROOT else FIXTURES_ENV}={root}) but there is no fixture for dataset {hub_id!r} "
                       f"config {config!r}: expected {d}/<split>.jsonl\n  fix: add one in the dataset's schema "
                       f"(diq fixtures writes the project's), or unset hub_fixtures")
    return files


def load_dataset(hub_id: str, config: str | None, split: str, alternatives: str):
    """``datasets.load_dataset`` from the Hub, or from the hub-shaped fixture when fixtures are configured."""
    import datasets

    files = fixture_files(hub_id, config)
    if files is not None:
        if split not in files:
            raise DiqError(f"fixture for {hub_id!r} ({config!r}) has splits {sorted(files)}, not {split!r}\n"
                           f"  fix: add {split}.jsonl beside them")
        return datasets.load_dataset("json", data_files={split: files[split]}, split=split)
    ensure_hub_reachable(hub_id, "dataset", alternatives)
    return datasets.load_dataset(hub_id, config, split=split)


def redirect_task(task_cfg: dict) -> dict:
    """An lm-eval task config whose ``dataset_path`` is a hub id, pointed at the fixture files when fixtures are
    configured (``dataset_path: json`` + ``data_files``); unchanged otherwise."""
    path = task_cfg.get("dataset_path")
    if not path or path in ("json", "csv", "parquet") or task_cfg.get("custom_dataset"):
        return task_cfg
    files = fixture_files(path, task_cfg.get("dataset_name"))
    if files is None:
        return task_cfg
    return {**task_cfg, "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {**(task_cfg.get("dataset_kwargs") or {}), "data_files": files}}

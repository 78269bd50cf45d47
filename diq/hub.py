"""Fail fast, with offline alternatives, when a hub id cannot be reached."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from .errors import DiqError


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

"""Atomic writes, content hashes and the content-addressed stage store.

Every artifact is written to a temporary file in the same folder and renamed into place, so a killed
process never leaves a file that looks complete. A stage directory counts as complete only when its
``_DONE.json`` marker exists; the marker is written last.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

DONE = "_DONE.json"

log = logging.getLogger(__name__)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_obj(obj: Any) -> str:
    return sha256_text(canonical_json(obj))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ids_hash(ids: Iterable[str]) -> str:
    """Hash of an ordered id list (the selection hash recorded in every record)."""
    return sha256_text("\n".join(ids))


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)  # a cache this user may read but not write
_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would (mkstemp makes 0600): a group's shared cache stays readable
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, obj: Any, indent: int | None = 2) -> Path:
    data = json.dumps(obj, indent=indent, ensure_ascii=False, default=str).encode("utf-8")
    return _atomic(Path(path), lambda f: f.write(data + b"\n"))


def write_text(path, text: str) -> Path:
    return _atomic(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_npy(path, arr: np.ndarray) -> Path:
    return _atomic(Path(path), lambda f: np.save(f, arr, allow_pickle=False))


def read_json(path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# read-only caches whose finished entries a run may reuse (``cache_from=[…]``); new work goes to ``cache_dir``
_REUSE_FROM: list[Path] = []


@contextmanager
def reuse_from(roots) -> Any:
    """For the duration of a run: finished stage entries are also looked up in these (read-only, shared) caches."""
    old = list(_REUSE_FROM)
    _REUSE_FROM[:] = [Path(os.path.expanduser(str(r))) for r in (roots or [])]
    try:
        yield
    finally:
        _REUSE_FROM[:] = old


def _owner(path: Path) -> str:
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError, ImportError):
        return "another user"


class StageDir:
    """A content-addressed directory for one stage's outputs: ``<root>/<stage>/<key[:16]>``.

    ``done`` is true only after :meth:`finish` wrote the marker. Partial directories left by a killed
    process are wiped by :meth:`begin` and recomputed. Every stage goes through :meth:`get_or_compute`, which checks
    ``done`` and computes under :meth:`lock`, so that two processes sharing a cache (a restarted sweep while the first
    one's Slurm tasks still run, two users) never compute or wipe the same stage at once: the second waits, then
    reuses the first's result.
    """

    def __init__(self, root: str | os.PathLike, stage: str, key_material: Any):
        self.key = sha256_obj(key_material)
        self.key_material = key_material
        self.stage = stage
        self.path = Path(root) / stage / self.key[:16]
        self.shared = False  # True: a finished entry of a read-only cache (cache_from), reused in place
        if not (self.path / DONE).exists():
            for r in _REUSE_FROM:
                other = r / stage / self.key[:16]
                if (other / DONE).exists() and self._damage_at(other) is None:
                    self.path, self.shared = other, True
                    break

    @contextmanager
    def lock(self):
        """Exclusive per-stage lock (``flock`` on ``<key>.lock``; released on exit, or by the OS if the process dies).
        A finished entry needs no lock to be read: in a read-only cache, or one whose lock another user owns, it is
        reused as it is; an unfinished one there stops with the fix (a writable ``cache_dir``)."""
        if self.shared:
            yield self
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path.parent / f"{self.path.name}.lock", "a")
        except OSError as e:
            if e.errno not in _NOT_WRITABLE:
                raise
            if self.done:
                log.info(f"{self.stage}/{self.path.name}: reusing it from a cache this user cannot write")
                yield self
                return
            raise self._not_writable(e) from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(f"{self.stage}/{self.path.name}: another process is computing it; waiting for it")
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def get_or_compute(self, compute: Callable[[Path], dict | None]) -> tuple[dict, bool]:
        """The store's one door, for every stage: under the lock, a finished entry's metadata (``reused`` True), or
        ``compute(folder)`` into a fresh folder, the metadata it returns written with the marker (``reused`` False).
        Returns (metadata, reused)."""
        with self.lock():
            if self.done:
                return self.meta(), True
            self.begin()
            meta = compute(self.path) or {}
            self.finish(meta)
            return meta, False

    @property
    def done(self) -> bool:
        """Marker present *and* every file it lists still there with its size; a damaged entry is named, wiped by
        :meth:`begin` and recomputed (never reused, never a traceback)."""
        marker = self.path / DONE
        if not marker.exists():
            return False
        problem = self._damage()
        if problem:
            log.info(f"{self.stage}/{self.path.name}: damaged cache entry ({problem}); recomputing it")
            return False
        return True

    def _not_writable(self, e: OSError) -> Exception:
        from diq.errors import DiqError

        root = self.path.parents[len(Path(self.stage).parts)]
        who = "it is read-only" if e.errno == errno.EROFS else f"it belongs to {_owner(self.path.parent)}"
        return DiqError(f"the {self.stage} stage must be computed, but its cache entry {self.path} cannot be written "
                        f"({who}: {e.strerror})\n  fix: keep reusing that cache and write new work to your own: "
                        f"cache_dir=<a folder you can write> 'cache_from=[{root}]'")

    def _damage(self) -> str | None:
        return self._damage_at(self.path)

    @staticmethod
    def _damage_at(path: Path) -> str | None:
        try:
            meta = read_json(path / DONE)
        except (OSError, ValueError) as e:
            return f"unreadable {DONE}: {type(e).__name__}"
        for rel, size in (meta.get("files") or {}).items():
            f = path / rel
            if not f.exists():
                return f"missing {rel}"
            if f.stat().st_size != size:
                return f"{rel} has {f.stat().st_size} bytes, expected {size}"
        return None

    def begin(self) -> Path:
        try:
            if self.path.exists() and not self.done:
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno not in _NOT_WRITABLE:
                raise
            raise self._not_writable(e) from None
        return self.path

    def finish(self, meta: dict | None = None) -> None:
        """Mark done, with a manifest of every file (relative path → size) and the folder the paths in ``meta`` were
        written under, so the entry can be moved or copied (``meta()`` rebases them)."""
        files = {str(p.relative_to(self.path)): p.stat().st_size for p in sorted(self.path.rglob("*"))
                 if p.is_file() and p.name != DONE and not p.name.endswith(".tmp")}
        here = self.path.resolve()

        def absolute(x):  # paths into this stage, however they were spelled, in one absolute form
            if isinstance(x, str) and x and os.path.exists(x):
                p = Path(x).resolve()
                if p == here or here in p.parents:
                    return str(p)
            if isinstance(x, dict):
                return {k: absolute(v) for k, v in x.items()}
            if isinstance(x, list):
                return [absolute(v) for v in x]
            return x
        meta = absolute(meta or {})
        write_json(self.path / DONE, {"stage": self.stage, "key": self.key, "inputs": self.key_material,
                                      "written_at": str(self.path.resolve()), "files": files, **(meta or {})})

    def meta(self) -> dict:
        """The marker's metadata; paths written under the folder where the stage was computed point into this
        folder now (a moved or copied cache never reads the original's files)."""
        meta = read_json(self.path / DONE)
        old, new = meta.get("written_at"), str(self.path.resolve())
        if not old or old == new:
            return meta

        def rebase(x):
            if isinstance(x, str) and (x == old or x.startswith(old + os.sep)):
                return new + x[len(old):]
            if isinstance(x, dict):
                return {k: rebase(v) for k, v in x.items()}
            if isinstance(x, list):
                return [rebase(v) for v in x]
            return x
        return rebase(meta)

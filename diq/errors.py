"""User-facing errors: each names the input (file, line, field) and the fix."""

import re


class DiqError(Exception):
    """An error caused by user input or environment, reported without a traceback.

    The message must say what is wrong, where (file / line / field / sample id) and how to fix it.
    """

    exit_code = 2


class DiskFull(DiqError):
    """A write failed because the disk (or a quota, or the file-size limit) is full."""


_FULL_ERRNOS = {28, 122, 27}  # ENOSPC, EDQUOT, EFBIG
_FULL_WORDS = ("no space left on device", "disk quota exceeded", "file too large", "storagefull", "filetoolarge",
               "os error 28", "os error 27", "code: 28", "code: 27")


def disk_full(exc: BaseException | None) -> BaseException | None:
    """The exception in ``exc``'s chain that says the disk is full: an OSError with ENOSPC / EDQUOT / EFBIG, or a
    library's wrapper of one (torch's and safetensors' writers raise RuntimeError-like errors that only name it)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return exc
        msg = str(exc).lower()
        if any(w in msg for w in _FULL_WORDS) or re.search(r"\d+ requested and \d+ written", msg):
            return exc  # the last: numpy's short write to a regular file, which only a full disk or limit causes
        exc = exc.__cause__ or exc.__context__
    return None

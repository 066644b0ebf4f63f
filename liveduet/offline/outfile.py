"""Output files written whole or not at all: a temporary name in the same folder, then a rename.

A failed write (a full disk, a folder that vanished) removes the temporary file, so no 0-byte
or half-written file is left under the name the user asked for, and the error says which
(``disk full`` for ENOSPC and EDQUOT, the system's words otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from liveduet.errors import LiveduetError

FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def write_with(path: str | os.PathLike[str], fill: Callable[[BinaryIO], None]) -> None:
    """Call ``fill`` with a binary file open under a temporary name; rename it to ``path``."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())  # a full disk may only say so here
        os.replace(tmp, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LiveduetError(_why(target, err)) from err


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all."""
    write_with(path, lambda fh: fh.write(data) and None)


def _why(target: Path, err: OSError) -> str:
    if err.errno in FULL:
        return (f"cannot write {target}: the disk is full; nothing was written. Fix: free some "
                "space or give a path on another disk")
    reason = err.strerror or str(err)
    return (f"cannot write {target} ({reason}); nothing was written. Fix: check that the folder "
            "exists and is writable")

"""Writing files so that a crash never leaves a half-written one.

Everything cnnlab writes (downloads, model files, reports, pictures) goes to a
temporary file beside the target, which is renamed over the target only once it is
complete. ``mkstemp`` creates files readable by the owner only; the finished file gets
the permissions an ordinary ``open(path, "w")`` would have given it (0666 less the umask).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` if the block succeeds,
    delete it if the block raises (the old ``target``, if any, stays as it was)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""Atomic file writes for every file the harness leaves behind (tables, plots, result.json,
failure.json, checkpoints): readers see the old file or the whole new one, never a part.

The new file is first written under a hidden temporary name in the same folder, flushed to disk,
then renamed over the target (``os.replace``, atomic on one filesystem). The temporary file is
created with mode 0o666, so the process umask applies exactly as for a plain ``open()`` (0644
under the usual 022): ``tempfile.mkstemp`` would create it 0600 and the rename would keep that,
leaving a results folder on shared storage unreadable to the group.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

NEW_FILE_MODE = 0o666   # what open(path, "w") asks for; the kernel removes the umask's bits


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to (any writer: ``open``, ``torch.save``,
    ``savefig``); on success it is synced and renamed onto ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE))
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)   # the data reach the disk before the rename makes them the file
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

"""Writing files so that a reader never sees half of one, and nothing but the file is replaced."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place.

    The rename replaces whatever the name points at, so it is only done for regular files (and
    new names). A symbolic link is written through to its target, and a device, pipe or socket
    (``--out /dev/null``, ``--out /dev/stdout``, a FIFO) is written to as it is: renaming over
    one would replace the device node with a plain file.
    """
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        with target.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600: give it the mode any new file gets
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

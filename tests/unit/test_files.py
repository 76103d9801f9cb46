"""write_atomic replaces regular files only: never a device node, a pipe or a symbolic link."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from dac.files import write_atomic


def test_a_regular_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.ndjson"
    write_atomic(target, "one\n")
    write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.ndjson"]  # no temporary left


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_a_named_pipe_stays_a_pipe(tmp_path: Path) -> None:
    # `dac run --out FIFO`: the reader gets the text, and the pipe is still a pipe afterwards.
    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    write_atomic(fifo, "alert\n")
    reader.join(timeout=10)
    assert received == ["alert\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_dev_null_stays_a_device() -> None:
    # Before the fix, `dac run --out /dev/null` renamed a plain file over the device node.
    write_atomic(Path("/dev/null"), "discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)

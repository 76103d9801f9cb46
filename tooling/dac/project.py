"""Where things live: the detections folder, the templates beside it, the version lock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dac.errors import DacError

LOCK_FILE = "version.lock.json"


@dataclass(frozen=True)
class Project:
    detections: Path  # the detections root (``--path``)
    templates: Path
    lock: Path

    @property
    def root(self) -> Path:
        """The repository: the folder holding detections/ and templates/."""
        return self.templates.parent

    @classmethod
    def at(cls, detections: Path) -> Project:
        """The project whose rules live under ``detections`` (templates/ sits beside it)."""
        if not detections.is_dir():
            raise DacError(f"detections folder not found: {detections}")
        root = detections.resolve().parent
        return cls(detections, root / "templates", detections / LOCK_FILE)

"""The version lock: each rule's version and the hash of its rendered content.

Kibana only accepts a rule update with a higher ``version``. ``dac build``
bumps a rule's version when its rendered object changes and records the new
hash; ``dac validate --check-lock`` fails when a change was not locked, so a
pull request always carries the version bump that goes with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dac.compile import CompiledRule
from dac.errors import DacError, Location, RuleError
from dac.files import write_atomic
from dac.loader import load_json


@dataclass(frozen=True)
class LockEntry:
    name: str
    version: int
    sha256: str


class VersionLock:
    def __init__(self, path: Path, entries: dict[str, LockEntry]) -> None:
        self.path = path
        self.entries = entries

    @classmethod
    def load(cls, path: Path) -> VersionLock:
        if not path.exists():
            return cls(path, {})
        try:
            raw = load_json(path)
        except RuleError as exc:
            raise DacError(f"version lock: {exc.message}", exc.location) from None
        try:
            entries = {
                rule_id: LockEntry(e["name"], int(e["version"]), e["sha256"]) for rule_id, e in raw.items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DacError(f"version lock entry is malformed: {exc}", Location(str(path), 1, 1)) from None
        return cls(path, entries)

    def is_current(self, rule: CompiledRule) -> bool:
        """Whether the lock already records this exact rendered content."""
        entry = self.entries.get(rule.rule.rule_id)
        return entry is not None and entry.sha256 == rule.content_hash

    def version_of(self, rule: CompiledRule) -> int:
        """The version ``rule`` gets: the locked one, bumped when the content changed."""
        entry = self.entries.get(rule.rule.rule_id)
        if entry is None:
            return 1
        return entry.version if entry.sha256 == rule.content_hash else entry.version + 1

    def updated(self, rules: list[CompiledRule]) -> VersionLock:
        entries = dict(self.entries)
        for rule in rules:
            entries[rule.rule.rule_id] = LockEntry(rule.rule.name, self.version_of(rule), rule.content_hash)
        return VersionLock(self.path, entries)

    def problems(self, rules: list[CompiledRule]) -> list[DacError]:
        """Rules whose rendered content differs from what the lock records."""
        found: list[DacError] = []
        for rule in rules:
            if not self.is_current(rule):
                locked = rule.rule.rule_id in self.entries
                state = "changed since it was locked" if locked else "is not in the version lock"
                found.append(
                    RuleError(
                        f"rule {state}: run `dac build` and commit {self.path}", rule.rule.location("rule_id")
                    )
                )
        return found

    def write(self) -> None:
        body = {
            rule_id: {"name": e.name, "version": e.version, "sha256": e.sha256}
            for rule_id, e in sorted(self.entries.items())
        }
        write_atomic(self.path, json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

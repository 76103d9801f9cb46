"""Writing the build: one Kibana rule JSON per rule and the NDJSON Kibana's import takes.

Output is byte-identical for identical input (sorted keys, sorted rules) and
swapped in only once it is complete, so a failed build leaves the previous one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson

from dac.compile import CompiledRule
from dac.errors import DacError
from dac.lock import VersionLock

RULES_DIR = "rules"
NDJSON_FILE = "rules.ndjson"


def rule_json(rule: dict[str, Any]) -> str:
    """Sorted keys, two-space indent, UTF-8, one trailing newline (what json.dumps would write)."""
    return orjson.dumps(
        rule, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    ).decode()


def rules_ndjson(rules: list[dict[str, Any]]) -> str:
    """One compact object per line: Kibana's rule import format."""
    return "".join(
        orjson.dumps(r, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE).decode() for r in rules
    )


def read_build(out: Path) -> dict[str, dict[str, Any]]:
    """The build output (``out/rules/*.json``) by rule_id: what the deployer sends."""
    folder = out / RULES_DIR
    if not folder.is_dir():
        raise DacError(f"no build output in {out}/: run `dac build` first")
    return {path.stem: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))}


def build_rules(compiled: list[CompiledRule], lock: VersionLock, out: Path) -> list[CompiledRule]:
    """What ``dac build`` does: write the build with locked versions and update the lock.

    Returns the rules whose version went up.
    """
    write_build([rule.with_version(lock.version_of(rule)) for rule in compiled], out)
    bumped = [rule for rule in compiled if not lock.is_current(rule)]
    lock.updated(compiled).write()
    return bumped


def write_build(rules: list[dict[str, Any]], out: Path) -> None:
    """Stage the whole build in a temporary folder inside ``out``, then move it into place."""
    rules = sorted(rules, key=lambda r: r["rule_id"])
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        (staging / RULES_DIR).mkdir()
        for rule in rules:
            (staging / RULES_DIR / f"{rule['rule_id']}.json").write_text(rule_json(rule), "utf-8")
        (staging / NDJSON_FILE).write_text(rules_ndjson(rules), "utf-8")
        old = out / f".old-{staging.name}"
        if (out / RULES_DIR).exists():
            (out / RULES_DIR).rename(old)
        (staging / RULES_DIR).rename(out / RULES_DIR)
        (staging / NDJSON_FILE).replace(out / NDJSON_FILE)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

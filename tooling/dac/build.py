"""Writing the build: one Kibana rule JSON per rule, one JSON per exception list, and the NDJSON
Kibana's import takes.

``exceptions/<list_id>.json`` holds ``{"list": <create-exception-list body>, "items": [<create-
exception-list-item bodies>]}``. ``rules.ndjson`` is the rules, then each list followed by its
items, as Kibana's rule export writes them (rule_management/logic/export/get_export_all.ts:
rules, exception lists and items, connectors, details; the import sorts lines by kind itself,
create_rules_stream_from_ndjson.ts ``sortImports``, and creates the lists before the rules).

Output is byte-identical for identical input (sorted keys, sorted rules, lists and items) and
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
EXCEPTIONS_DIR = "exceptions"
NDJSON_FILE = "rules.ndjson"


def rule_json(rule: dict[str, Any]) -> str:
    """Sorted keys, two-space indent, UTF-8, one trailing newline (what json.dumps would write)."""
    return _rule_json_bytes(rule).decode()


def _rule_json_bytes(rule: dict[str, Any]) -> bytes:
    return orjson.dumps(rule, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def rules_ndjson(rules: list[dict[str, Any]], exception_lists: list[dict[str, Any]] | None = None) -> str:
    """One compact object per line: Kibana's rule import format (rules, then each list and its items)."""
    objects = [*rules, *(obj for lst in exception_lists or [] for obj in (lst["list"], *lst["items"]))]
    return "".join(
        orjson.dumps(o, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE).decode() for o in objects
    )


def read_build(out: Path) -> dict[str, dict[str, Any]]:
    """The build output (``out/rules/*.json``) by rule_id: what the deployer sends."""
    folder = out / RULES_DIR
    if not folder.is_dir():
        raise DacError(f"no build output in {out}/: run `dac build` first")
    return {path.stem: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))}


def read_exception_lists(out: Path) -> dict[str, dict[str, Any]]:
    """The build's exception lists (``out/exceptions/<list_id>.json``, ``{"list", "items"}``) by list_id."""
    folder = out / EXCEPTIONS_DIR
    return {path.stem: orjson.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))}


def build_rules(compiled: list[CompiledRule], lock: VersionLock, out: Path) -> list[CompiledRule]:
    """What ``dac build`` does: write the build with locked versions and update the lock.

    Returns the rules whose version went up.
    """
    lists = {lst.list_id: lst.kibana() for rule in compiled for lst in rule.exception_lists}
    write_build([rule.with_version(lock.version_of(rule)) for rule in compiled], out, list(lists.values()))
    bumped = [rule for rule in compiled if not lock.is_current(rule)]
    lock.updated(compiled).write()
    return bumped


def write_build(
    rules: list[dict[str, Any]], out: Path, exception_lists: list[dict[str, Any]] | None = None
) -> None:
    """Stage the whole build in a temporary folder inside ``out``, then move it into place.

    ``exception_lists`` are ``{"list": ..., "items": [...]}`` objects (``ExceptionList.kibana()``).
    """
    rules = sorted(rules, key=lambda r: r["rule_id"])
    lists = sorted(exception_lists or [], key=lambda lst: lst["list"]["list_id"])
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    folders = (RULES_DIR, EXCEPTIONS_DIR)
    try:
        for folder in folders:
            (staging / folder).mkdir()
        for rule in rules:
            (staging / RULES_DIR / f"{rule['rule_id']}.json").write_bytes(_rule_json_bytes(rule))
        for lst in lists:
            (staging / EXCEPTIONS_DIR / f"{lst['list']['list_id']}.json").write_bytes(_rule_json_bytes(lst))
        (staging / NDJSON_FILE).write_text(rules_ndjson(rules, lists), "utf-8")
        olds = []
        for folder in folders:
            if (out / folder).exists():
                old = out / f".old-{folder}-{staging.name}"
                (out / folder).rename(old)
                olds.append(old)
            (staging / folder).rename(out / folder)
        (staging / NDJSON_FILE).replace(out / NDJSON_FILE)
        for old in olds:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

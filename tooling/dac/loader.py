"""Reading rule files: YAML with the position of every key and value.

PyYAML's safe loader forgets where things were, so this module composes the
node tree itself and keeps a map from each path in the data
(``("tests", 0, "name")``) to its line and column. Every later stage reports
problems through that map as ``file:line:column: message``.

Every YAML file dac reads goes through :func:`load_yaml`: rules, ``templates/data/*.yml``,
the test scenarios inside rules, and deploy targets. It is the one place that bounds what
untrusted YAML may cost (limits in ``dac.limits``):

- **Aliases are refused**, not capped. An alias (``*name``, also behind a ``<<`` merge key)
  repeats a node by reference, so nine nested aliases of nine items each expand 600 bytes of
  text into 387 million values ("billion laughs"). A cap would still let a reviewer's diff
  show one line that means hundreds of values elsewhere; rules are reviewed as text, nothing
  shipped uses aliases, and writing the value twice is always possible. The check reads the
  parser's events only when the text holds an ``&`` (no anchor, no alias), so ordinary files
  pay nothing for it.
- The file size (``MAX_FILE_BYTES``) and the nesting depth (``MAX_NESTING_DEPTH``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml

from dac.errors import Location, RuleError
from dac.limits import MAX_FILE_BYTES, MAX_NESTING_DEPTH, exceeded
from dac.project import LOCK_FILE

DataPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"


@lru_cache(maxsize=4096)
def _plain_scalar_tag(value: str) -> str:
    """The tag YAML 1.1 gives an untagged plain scalar (bool, int, float, null, timestamp, str)."""
    return yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False))


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser when PyYAML was built with it (it keeps marks, and is ~10x faster),
    with PyYAML's tag resolution, which runs in Python for every node, made cheap.

    A plain scalar's tag depends only on its text (no path resolvers are registered), so it is
    worked out once per distinct text; quoted and block scalars are strings. The same tags as
    PyYAML's resolver, in a quarter of the composing time it took.
    """

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _plain_scalar_tag(value) if implicit[0] else _STR_TAG
        return super().resolve(kind, value, implicit)

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass  # only path resolvers need to follow the descent

    def ascend_resolver(self) -> None:
        pass


_LOADER = _Loader
EXCEPTIONS_DIR = "exceptions"  # detections/exceptions/: shared exception lists, not rules
# Characters YAML 1.1 does not allow in a stream (yaml.reader.Reader.NON_PRINTABLE).
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Positions:
    """Where each value (and each mapping key) of a YAML document stands.

    Worked out on first use, by composing the text again: a valid rule never needs it, so
    loading stays cheap and a compiled rule carries only its text between processes.
    """

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text

    @cached_property
    def _builder(self) -> _Builder:
        builder = _Builder(self.path, self.text.splitlines(), record=True)
        builder.build(yaml.compose(self.text, Loader=_LOADER), ())
        return builder

    @property
    def _tables(self) -> tuple[dict[DataPath, tuple[int, int]], dict[DataPath, tuple[int, int]]]:
        return self._builder.values, self._builder.keys

    def style(self, data_path: DataPath) -> str | None:
        """How a scalar is written: ``|``, ``>``, ``"``, ``'`` or ``""`` (plain); None if no scalar."""
        return self._builder.styles.get(data_path)

    def of(self, data_path: DataPath, key: bool = False) -> Location:
        """The location of ``data_path``, or of its nearest ancestor that has one."""
        values, keys = self._tables
        table = keys if key else values
        for end in range(len(data_path), -1, -1):
            found = table.get(data_path[:end]) or values.get(data_path[:end])
            if found:
                return Location(self.path, *found)
        return Location(self.path, 1, 1)

    def __getstate__(self) -> dict[str, str]:
        return {"path": self.path, "text": self.text}


@dataclass(frozen=True)
class LoadedYaml:
    data: Any
    positions: Positions  # also holds the text


def read_text(path: Path) -> str:
    """The file as UTF-8 text; a bad byte is reported at its line and column, a huge file refused."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RuleError(
                exceeded(f"file size {size:,} bytes", MAX_FILE_BYTES, "bytes", "MAX_FILE_BYTES"),
                Location(str(path), 1, 1),
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise RuleError(f"cannot read file: {exc.strerror}", Location(str(path))) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise RuleError(
            f"file is not UTF-8 (byte 0x{raw[exc.start]:02x})", Location(str(path), line, column)
        ) from None


def load_yaml(path: Path) -> LoadedYaml:
    """Parse one YAML document, keeping positions; duplicate keys are errors."""
    text = read_text(path)
    where = str(path)
    try:
        if "&" in text:
            _refuse_aliases(text, where)
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, where) from None
    except yaml.YAMLError:  # reader errors: characters YAML does not allow
        raise _character_error(text, where) from None
    if node is None:
        raise RuleError("file is empty: expected a rule (a YAML mapping)", Location(where, 1, 1))
    data = _Builder(where, [], record=False).build(node, ())  # lines serve only positions
    return LoadedYaml(data, Positions(where, text))


def load_json(path: Path) -> Any:
    """A JSON file from the repository (the version lock), within the size and nesting limits."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleError(f"not valid JSON: {exc.msg}", Location(str(path), exc.lineno, exc.colno)) from None
    except RecursionError:  # deeper than Python's stack: far past the limit
        too_deep = True
    else:
        too_deep = _depth(data) > MAX_NESTING_DEPTH
    if too_deep:
        limit = exceeded("nesting depth", MAX_NESTING_DEPTH, "levels", "MAX_NESTING_DEPTH")
        raise RuleError(limit, Location(str(path), 1, 1))
    return data


def _depth(data: Any) -> int:
    """How deeply lists and objects nest in ``data`` (without recursion)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _refuse_aliases(text: str, where: str) -> None:
    """Raise at the first alias (see the module docstring for why aliases are refused)."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise RuleError(
                f"YAML alias *{event.anchor} is not allowed: write the value out "
                "(aliases can expand a small file into billions of values)",
                Location(where, event.start_mark.line + 1, event.start_mark.column + 1),
            )


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, where: str) -> RuleError:
    """A syntax error at the construct that was left open (an unclosed quote or bracket), with
    the place where the parser gave up; else at the problem itself.

    A quote left open usually does not fail where it opens: the string runs on to the next
    quote, lines later, and the parser stops after that. So a quoted string spanning lines
    before the failure is named as the likely cause, at its opening quote.
    """
    problem = exc.problem or exc.context or "invalid YAML"
    found = exc.problem_mark
    runaway = _runaway_quote(text, found.line) if found else None
    if found and runaway:
        return RuleError(
            f"YAML syntax error: {problem} at line {found.line + 1}, column {found.column + 1}; "
            f"the quoted string that starts here runs on to line {runaway.end_mark.line + 1}: "
            "is its closing quote missing?",
            Location(where, runaway.start_mark.line + 1, runaway.start_mark.column + 1),
        )
    if "maximum nesting depth" in problem:
        problem = exceeded("nesting depth", 1000, "levels", "libyaml") + f" ({problem})"
    start, found = exc.context_mark, exc.problem_mark
    opened = (exc.context or "").startswith("while ")  # an unclosed quote, bracket or block
    if start and found and opened and (start.line, start.column) != (found.line, found.column):
        return RuleError(
            f"YAML syntax error: {problem} at line {found.line + 1}, column {found.column + 1}, "
            f"{exc.context} that starts here",
            Location(where, start.line + 1, start.column + 1),
        )
    mark = found or start
    location = Location(where, mark.line + 1, mark.column + 1) if mark else Location(where, 1, 1)
    return RuleError(f"YAML syntax error: {problem}", location)


def _runaway_quote(text: str, error_line: int) -> yaml.Token | None:
    """The last quoted scalar spanning lines that ends at or before ``error_line``, if any."""
    last = None
    try:
        for token in yaml.scan(text, Loader=_LOADER):
            if token.start_mark.line > error_line:
                break
            if (
                isinstance(token, yaml.ScalarToken)
                and token.style in ('"', "'")
                and token.end_mark.line > token.start_mark.line
            ):
                last = token
    except yaml.YAMLError:
        pass
    return last


def _character_error(text: str, where: str) -> RuleError:
    """One line for a character YAML refuses (a NUL byte, a control character), at its column."""
    found = _NON_PRINTABLE.search(text)
    if found is None:
        return RuleError("YAML error: the file holds a character YAML does not allow", Location(where, 1, 1))
    start = found.start()
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return RuleError(
        f"character U+{ord(found.group()):04X} is not allowed in YAML (control characters are refused)",
        Location(where, line, column),
    )


class _Builder:
    """Turns a composed node tree into plain data, recording positions when asked to."""

    def __init__(self, where: str, lines: list[str], record: bool) -> None:
        self.where = where
        self.lines = lines
        self.record = record
        self.values: dict[DataPath, tuple[int, int]] = {}
        self.keys: dict[DataPath, tuple[int, int]] = {}
        self.styles: dict[DataPath, str] = {}
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: DataPath) -> Any:
        if not self.record:
            return self._data(node, len(path))
        self._check_depth(node, len(path))
        self.values[path] = self.content_position(node)
        if isinstance(node, yaml.ScalarNode):
            self.styles[path] = node.style or ""
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node, result)
                self.keys[(*path, key)] = _position(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def _data(self, node: yaml.Node, depth: int) -> Any:
        """``build`` without recording, for loading a file: the same checks, no data paths."""
        kind = type(node)
        if kind is yaml.ScalarNode:
            return node.value if node.tag == _STR_TAG else self.scalar(node)  # most values are text
        self._check_depth(node, depth)
        if kind is yaml.MappingNode:
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node, result)  # before the value: its problems come first
                result[key] = self._data(value_node, depth + 1)
            return result
        return [self._data(item, depth + 1) for item in node.value]

    def _check_depth(self, node: yaml.Node, depth: int) -> None:
        if depth >= MAX_NESTING_DEPTH and not isinstance(node, yaml.ScalarNode):
            limit = exceeded("nesting depth", MAX_NESTING_DEPTH, "levels", "MAX_NESTING_DEPTH")
            raise RuleError(limit, self.location(node))

    def _key(self, node: yaml.Node, mapping: dict[Any, Any]) -> str:
        """A mapping key: a string, not already in ``mapping``."""
        key = self.scalar(node)
        if not isinstance(key, str):  # YAML 1.1 reads `on`, `no`, `1` or `~` as non-strings
            raise RuleError(f"mapping key {node.value!r} is not a string: quote it", self.location(node))
        if key in mapping:
            raise RuleError(f"duplicate key {key!r}", self.location(node))
        return key

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise RuleError("a mapping key must be a plain value", self.location(node))
        if node.tag == _STR_TAG:
            return node.value  # most values: skip the generic constructor
        try:
            value = self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise RuleError(f"invalid value: {problem}", self.location(node)) from None
        except (ValueError, OverflowError) as exc:  # e.g. the date 2026-13-45, or !!int zz
            raise RuleError(f"invalid {node.tag.rpartition(':')[2]} value {node.value!r}: {exc}",
                            self.location(node)) from None
        # The files are JSON data checked by JSON Schema, which has no dates: an unquoted
        # 2027-05-31 stays the text it was written as.
        return node.value if isinstance(value, date) else value

    def location(self, node: yaml.Node) -> Location:
        return Location(self.where, *_position(node))

    def content_position(self, node: yaml.Node) -> tuple[int, int]:
        """Where a value's text starts: for ``|``/``>`` block scalars, the first content line."""
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            index = node.start_mark.line + 1
            if index < len(self.lines):
                line = self.lines[index]
                return index + 1, len(line) - len(line.lstrip(" ")) + 1
        return _position(node)


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


RULE_SUFFIXES = (".yml", ".yaml")  # in any case: rule.YML is a rule
_NOT_RULES = frozenset({".gitkeep", ".gitignore", ".gitattributes", LOCK_FILE})


@dataclass(frozen=True)
class RuleFiles:
    """The rule files under a root, and every file or link there that is not one (never skipped)."""

    files: list[Path]
    problems: list[RuleError]


def find_rule_files(root: Path, repository: Path | None = None, allow_empty: bool = False) -> RuleFiles:
    """Every ``*.yml``/``*.yaml`` file below ``root`` (any case), in a stable order.

    ``root/exceptions/`` holds shared exception lists (:func:`exception_list_files`), not rules.

    Other files are errors, except READMEs, the version lock and git's placeholder files: a
    misnamed rule (``rule.yml.txt``, ``rule.json``) must not drop out of the build unseen.
    A symbolic link is followed when it leads into the ``repository`` (default: the folder
    holding ``root``) outside ``root`` itself, e.g. rules shared from another folder. Every
    other link is an error: one into ``root`` would read the same rules twice, one out of
    the repository reads what review never saw, and one into a folder already read is a loop.
    """
    if not root.exists():
        return RuleFiles([], [RuleError("no such rule file or folder", Location(str(root)))])
    if root.is_file():
        return RuleFiles([root], [])
    top = root.resolve()
    boundary = (repository or root.resolve().parent).resolve()
    files: list[Path] = []
    problems: list[RuleError] = []
    seen: dict[Path, Path] = {}

    def refuse(entry: Path, why: str) -> None:
        problems.append(RuleError(f"symbolic link {why}: refused", Location(str(entry))))

    def visit(folder: Path, real_folder: Path) -> None:
        with os.scandir(folder) as listing:  # file types from the listing: no stat per plain file
            found = sorted(listing, key=lambda item: item.name)
        for item in found:
            entry = folder / item.name
            if folder == root and item.name == EXCEPTIONS_DIR and item.is_dir():
                continue  # shared exception lists (exception_list_files), not rules
            # Only a link can lead elsewhere: anything else is where its folder really is.
            real = entry.resolve() if item.is_symlink() else real_folder / item.name
            if item.is_symlink():
                if not entry.exists():
                    refuse(entry, "leads nowhere")
                    continue
                if real.is_relative_to(top):
                    refuse(entry, "leads inside the detections folder, which is read directly (a duplicate)")
                    continue
                if real in seen:
                    refuse(entry, f"leads to {seen[real]}, which is already read (a loop)")
                    continue
                if not real.is_relative_to(boundary):
                    refuse(entry, f"leads outside the repository ({boundary})")
                    continue
            seen[real] = entry
            if item.is_dir():
                visit(entry, real)
            elif entry.suffix.lower() in RULE_SUFFIXES:
                files.append(entry)
            elif not (entry.name in _NOT_RULES or entry.name.upper().startswith("README")):
                problems.append(
                    RuleError(
                        "not a rule file: rules end in .yml or .yaml; move or rename this file "
                        "(only READMEs and the version lock may sit beside rules)",
                        Location(str(entry)),
                    )
                )

    seen[top] = root
    visit(root, top)
    if not files and not problems and not allow_empty:  # `dac pull` may start an empty repository
        problems.append(RuleError("no rule files (*.yml, *.yaml) in this folder", Location(str(root))))
    return RuleFiles(sorted(files), problems)


def rule_files(root: Path, repository: Path | None = None) -> list[Path]:
    """The rule files below ``root``; raises the first problem :func:`find_rule_files` finds."""
    found = find_rule_files(root, repository)
    if found.problems:
        raise found.problems[0]
    return found.files


def exception_list_files(detections: Path) -> list[Path]:
    """The shared exception list files, ``detections/exceptions/*.yml``, in a stable order."""
    folder = detections / EXCEPTIONS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in RULE_SUFFIXES and p.is_file())

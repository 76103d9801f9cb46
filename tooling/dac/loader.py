"""Reading rule files: YAML with the position of every key and value.

PyYAML's safe loader forgets where things were, so this module composes the
node tree itself and keeps a map from each path in the data
(``("tests", 0, "name")``) to its line and column. Every later stage reports
problems through that map as ``file:line:column: message``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from dac.errors import Location, RuleError

DataPath = tuple[str | int, ...]

# libyaml's parser when PyYAML was built with it (it keeps marks, and is ~10x faster).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
MAX_DEPTH = 100  # nesting levels a rule file may use; a rule needs fewer than 10


class Positions:
    """Where each value (and each mapping key) of a YAML document stands.

    Worked out on first use, by composing the text again: a valid rule never needs it, so
    loading stays cheap and a compiled rule carries only its text between processes.
    """

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text

    @cached_property
    def _tables(self) -> tuple[dict[DataPath, tuple[int, int]], dict[DataPath, tuple[int, int]]]:
        builder = _Builder(self.path, self.text.splitlines(), record=True)
        builder.build(yaml.compose(self.text, Loader=_LOADER), ())
        return builder.values, builder.keys

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
    """The file as UTF-8 text; a bad byte is reported at its line and column."""
    raw = path.read_bytes()
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
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        location = Location(where, mark.line + 1, mark.column + 1) if mark else Location(where)
        raise RuleError(f"YAML syntax error: {problem}", location) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. a control character
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise RuleError(f"YAML error: {exc.reason} (U+{exc.character:04X})", Location(where, line, column)) \
            from None
    except yaml.YAMLError as exc:
        raise RuleError(f"YAML error: {str(exc).splitlines()[0]}", Location(where, 1, 1)) from None
    if node is None:
        raise RuleError("file is empty: expected a rule (a YAML mapping)", Location(where, 1, 1))
    data = _Builder(where, text.splitlines(), record=False).build(node, ())
    return LoadedYaml(data, Positions(where, text))


class _Builder:
    """Turns a composed node tree into plain data, recording positions when asked to."""

    def __init__(self, where: str, lines: list[str], record: bool) -> None:
        self.where = where
        self.lines = lines
        self.record = record
        self.values: dict[DataPath, tuple[int, int]] = {}
        self.keys: dict[DataPath, tuple[int, int]] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.open: set[int] = set()  # the collection nodes being built, to catch an alias to an ancestor

    def build(self, node: yaml.Node, path: DataPath) -> Any:
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self.open:
                raise RuleError("recursive YAML alias: a value contains itself", self.location(node))
            if len(path) >= MAX_DEPTH:
                raise RuleError(f"YAML nested deeper than {MAX_DEPTH} levels", self.location(node))
            self.open.add(id(node))
            try:
                return self.collection(node, path)
            finally:
                self.open.discard(id(node))
        if self.record:
            self.values[path] = self.content_position(node)
        return self.scalar(node)

    def collection(self, node: yaml.CollectionNode, path: DataPath) -> Any:
        if self.record:
            self.values[path] = self.content_position(node)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node)
                if not isinstance(key, str):  # YAML 1.1 reads `on`, `no`, `1` or `~` as non-strings
                    raise RuleError(
                        f"mapping key {key_node.value!r} is not a string: quote it", self.location(key_node)
                    )
                if key in result:
                    raise RuleError(f"duplicate key {key!r}", self.location(key_node))
                if self.record:
                    self.keys[(*path, key)] = _position(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise RuleError("a mapping key must be a plain value", self.location(node))
        if node.tag == _STR_TAG:
            return node.value  # most values: skip the generic constructor
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise RuleError(f"invalid value: {problem}", self.location(node)) from None
        except (ValueError, OverflowError) as exc:  # e.g. the date 2026-13-45, or !!int zz
            raise RuleError(f"invalid {node.tag.rpartition(':')[2]} value {node.value!r}: {exc}",
                            self.location(node)) from None

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


def rule_files(root: Path) -> Iterator[Path]:
    """Every rule file below ``root`` (``*.yml`` / ``*.yaml``), in a stable order."""
    if root.is_file():
        yield root
        return
    yield from sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())

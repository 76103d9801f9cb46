"""The index mappings the rules run against: one JSON file per data stream.

Each file under ``dac/data/mappings/`` is the ``mappings`` body of an
Elasticsearch index template, exactly as the Elastic integration installs it,
plus a ``_meta`` block naming the integration package version it mirrors and
the index patterns it serves. The same file drives field validation, the local
engine (unmapped fields, ``ignore_above``, keyword vs text) and the integration
suite's index template, so the three can never disagree.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from dac.errors import DacError

MAPPINGS_PACKAGE = "dac.data.mappings"


def java_length(text: str) -> int:
    """Java's ``String.length()``, which ``ignore_above`` counts: a code point above U+FFFF counts twice."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class FieldSpec:
    """One indexed leaf field (multi-fields such as ``x.text`` are their own entries)."""

    name: str
    type: str
    ignore_above: int | None = None
    index: bool = True
    doc_values: bool = True
    nested_path: str | None = None  # the innermost enclosing ``nested`` object, if any


class IndexMapping:
    """A parsed mapping: leaf fields by full dotted name, object and nested paths."""

    def __init__(self, name: str, body: dict[str, Any]) -> None:
        self.name = name
        self.body = body
        meta = body.get("_meta", {})
        self.package = meta.get("package")
        self.package_version = meta.get("package_version")
        self.index_patterns: list[str] = list(meta.get("index_patterns", []))
        self.fields: dict[str, FieldSpec] = {}
        self.objects: set[str] = set()
        self.nested: set[str] = set()
        self._collect(body.get("properties", {}), prefix="", nested_path=None)

    def _collect(self, properties: dict[str, Any], prefix: str, nested_path: str | None) -> None:
        for key, spec in properties.items():
            path = f"{prefix}{key}"
            kind = spec.get("type", "object")
            if kind in ("object", "nested") or "properties" in spec:
                self.objects.add(path)
                inner = nested_path
                if kind == "nested":
                    self.nested.add(path)
                    inner = path
                self._collect(spec.get("properties", {}), f"{path}.", inner)
                continue
            self.fields[path] = FieldSpec(
                name=path,
                type=kind,
                ignore_above=spec.get("ignore_above"),
                index=spec.get("index", True),
                doc_values=spec.get("doc_values", True),
                nested_path=nested_path,
            )
            for sub, sub_spec in spec.get("fields", {}).items():
                self.fields[f"{path}.{sub}"] = FieldSpec(
                    name=f"{path}.{sub}",
                    type=sub_spec.get("type", "keyword"),
                    ignore_above=sub_spec.get("ignore_above"),
                    index=sub_spec.get("index", True),
                    doc_values=sub_spec.get("doc_values", True),
                    nested_path=nested_path,
                )

    def field(self, name: str) -> FieldSpec | None:
        """The leaf field called ``name``, or None when the index does not map it."""
        return self.fields.get(name)

    def matching_fields(self, pattern: str) -> list[FieldSpec]:
        """Leaf fields whose names match a KQL/EQL field wildcard such as ``user.*``."""
        return [spec for name, spec in self.fields.items() if fnmatch.fnmatchcase(name, pattern)]

    def serves(self, index_pattern: str) -> bool:
        """Whether a rule's index pattern reads the data stream this mapping describes."""
        return any(
            fnmatch.fnmatchcase(own, index_pattern) or fnmatch.fnmatchcase(index_pattern, own)
            for own in self.index_patterns
        )

    def template_mappings(self) -> dict[str, Any]:
        """The ``mappings`` body to put into an index template."""
        return self.body


@cache
def load_mapping(name: str) -> IndexMapping:
    """Load ``dac/data/mappings/<name>.json`` (cached: mappings never change at run time)."""
    try:
        text = resources.files(MAPPINGS_PACKAGE).joinpath(f"{name}.json").read_text("utf-8")
    except FileNotFoundError as exc:
        raise DacError(f"no field mapping called {name!r}") from exc
    return IndexMapping(name, json.loads(text))


@cache
def known_mappings() -> tuple[IndexMapping, ...]:
    """Every mapping shipped with the tooling (listed once: every rule's indices are looked up here)."""
    files = resources.files(MAPPINGS_PACKAGE).iterdir()
    return tuple(
        load_mapping(f.name.removesuffix(".json"))
        for f in sorted(files, key=lambda f: f.name)
        if f.name.endswith(".json")
    )


def mapping_for_index(index_pattern: str) -> IndexMapping | None:
    """The mapping that serves ``index_pattern``, or None when no shipped mapping does."""
    for mapping in known_mappings():
        if mapping.serves(index_pattern):
            return mapping
    return None

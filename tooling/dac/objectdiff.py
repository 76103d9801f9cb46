"""Field-level differences between two Kibana rule objects.

One implementation for every place that shows how a rule changed: the deploy plan
(Kibana → repository, and drift) and the pull-request review (BASE → HEAD). Both read
rendered objects (build output or Kibana's answer); neither renders rules again.

Normalisation follows what Kibana's own rule-upgrade review compares: keys sorted, the
fields Kibana manages itself left out, and trailing white space in queries ignored. What
Kibana fills in on read is not a change either: it answers an absent list or text field as
``[]`` or ``""`` (``setup: params.setup ?? ''``, ``required_fields: … ?? []`` in
rule_management/logic/detection_rules_client/converters/normalize_rule_fields_common.ts), and
adds an ``ecs`` flag to each required field (``addEcsToRequiredFields``), so empty values are
left out and ``ecs`` is dropped.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Fields Kibana sets or keeps itself (security_solution common/api/detection_engine/model/
# rule_schema: ResponseFields, plus rule_source/immutable for prebuilt-rule tracking).
KIBANA_MANAGED_FIELDS = frozenset(
    {
        "id",
        "revision",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "execution_summary",
        "rule_source",
        "immutable",
    }
)

_EMPTY: tuple[Any, ...] = ([], "", {}, None)

# Long free text is shown as a unified diff rather than before → after.
TEXT_FIELDS = frozenset({"query", "description", "note", "setup"})


@dataclass(frozen=True)
class FieldChange:
    """One top-level field that differs. ``None`` on a side means the field is absent there."""

    field: str
    before: Any
    after: Any

    @property
    def is_text(self) -> bool:
        return self.field in TEXT_FIELDS and isinstance(self.before or "", str) and isinstance(
            self.after or "", str
        )

    def unified_diff(self, before_label: str = "before", after_label: str = "after") -> str:
        """The change as a unified diff of lines (text fields), without the ``---``/``+++`` header."""
        lines = difflib.unified_diff(
            _text(self.before).splitlines(),
            _text(self.after).splitlines(),
            fromfile=before_label,
            tofile=after_label,
            lineterm="",
        )
        return "\n".join(list(lines)[2:])


def normalise(rule: Mapping[str, Any], ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The comparable part of a rule object: managed fields dropped, query trailing space trimmed."""
    skip = KIBANA_MANAGED_FIELDS | ignore
    out = {key: rule[key] for key in sorted(rule) if key not in skip and rule[key] not in _EMPTY}
    if isinstance(out.get("required_fields"), list):
        out["required_fields"] = [
            {k: v for k, v in item.items() if k != "ecs"} if isinstance(item, dict) else item
            for item in out["required_fields"]
        ]
    if isinstance(out.get("query"), str):
        out["query"] = "\n".join(line.rstrip() for line in out["query"].rstrip().splitlines())
    if isinstance(out.get("exceptions_list"), list):
        # A reference is (list_id, type, namespace_type); its ``id`` is the list's saved-object id, which
        # Kibana assigns per space (the build writes the list_id there as a placeholder).
        out["exceptions_list"] = [
            {k: v for k, v in ref.items() if k != "id"} if isinstance(ref, dict) else ref
            for ref in out["exceptions_list"]
        ]
    return out


def field_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], ignore: frozenset[str] = frozenset()
) -> list[FieldChange]:
    """Every top-level field whose normalised value differs, in field-name order."""
    old, new = normalise(before, ignore), normalise(after, ignore)
    return [
        FieldChange(key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _text(value: Any) -> str:
    return "" if value is None else str(value)

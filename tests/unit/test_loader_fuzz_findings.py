"""YAML the loader fuzzer (tests/fuzz/test_fuzz_loader.py) found crashing it; each is now one located line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dac.errors import RuleError
from dac.limits import MAX_NESTING_DEPTH
from dac.loader import load_yaml


@pytest.mark.parametrize(("text", "expected"), [
    # RecursionError: an alias inside the collection its anchor names (now: every alias is refused)
    ("rule_id: &a [*a, *a]\nname: *a\n", "1:14: YAML alias *a is not allowed: write the value out "
     "(aliases can expand a small file into billions of values)"),
    # RecursionError once nesting passed ~500 levels (libyaml itself allows 1,000)
    ("a: " + "[" * 600 + "]" * 600 + "\n",
     f"1:{4 + MAX_NESTING_DEPTH - 1}: nesting depth exceeds the limit of {MAX_NESTING_DEPTH} levels "
     "(dac.limits.MAX_NESTING_DEPTH)"),
    # a reader error used to be three lines ("in <unicode string>, position 9") placed at 1:1
    ("a: b\nc: d\x1f\n", "2:5: character U+001F is not allowed in YAML (control characters are refused)"),
    # ValueError: a plain scalar that YAML 1.1 resolves as a timestamp but is no date
    ("a: 2026-13-45\n", "1:4: invalid timestamp value '2026-13-45': month must be in 1..12"),
    ("a: !!int zz\n", "1:4: invalid int value 'zz': invalid literal for int() with base 10: 'zz'"),
])
def test_hostile_yaml_is_one_located_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "rule.yml"
    path.write_text(text, "utf-8")
    with pytest.raises(RuleError) as caught:
        load_yaml(path)
    assert str(caught.value) == f"{path}:{expected}"

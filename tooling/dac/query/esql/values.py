"""How ES|QL sees field values: types, loading from ``_source``, and printing.

ES|QL reads most fields from doc values, not from ``_source``, and that shows:
keyword values are deduplicated and sorted, values longer than ``ignore_above``
(counted in UTF-16 units, as Java's ``String.length()``) are absent, numbers
and booleans come back sorted. Text fields have no doc values and are read from
``_source`` in source order. Expected outputs are pinned down by
server/src/test/java/org/elasticsearch/index/mapper/blockloader/
KeywordFieldBlockLoaderTests.java and TextFieldBlockLoaderTests.java.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import struct
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from dac.mapping import FieldSpec, java_length
from dac.query import codegen

STRING_TYPES = frozenset({"keyword", "text"})
NUMERIC_TYPES = frozenset({"integer", "long", "double"})

# Elasticsearch mapping type -> ES|QL data type (x-pack/plugin/esql-core/.../type/DataType.java).
_ESQL_TYPES = {
    "keyword": "keyword",
    "constant_keyword": "keyword",
    "wildcard": "keyword",
    "text": "text",
    "match_only_text": "text",
    "long": "long",
    "integer": "integer",
    "short": "integer",
    "byte": "integer",
    "double": "double",
    "float": "double",
    "half_float": "double",
    "scaled_float": "double",
    "boolean": "boolean",
    "date": "datetime",
    "ip": "ip",
}
_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


def esql_type(mapping_type: str) -> str:
    """The ES|QL type of a mapped field; ``unsupported`` for the types ES|QL cannot read."""
    return _ESQL_TYPES.get(mapping_type, "unsupported")


def is_multi(value: Any) -> bool:
    return type(value) is list


# ---- reading a dotted path out of _source ------------------------------------


@lru_cache(maxsize=1024)
def path_reader(path: str) -> Callable[[dict[str, Any]], list[Any]]:
    """A compiled ``dac.documents.values_at(source, path)``: same results, no per-call string work.
    Memoized: it keeps no state, and rules from one template read the same fields (compiling
    one costs about 0.4 ms)."""
    parts = path.split(".")
    n = len(parts)
    keys = [[(".".join(parts[i:j]), j) for j in range(i + 1, n + 1)] for i in range(n)]

    def walk(node: Any, i: int, out: list[Any]) -> None:
        if type(node) is list:
            for item in node:
                walk(item, i, out)
            return
        if i == n:
            if node is not None:
                out.append(node)
            return
        if type(node) is not dict:
            return
        for key, j in keys[i]:
            if key in node:
                value = node[key]
                if type(value) is list:
                    for item in value:
                        if type(item) in (list, dict):
                            walk(item, j, out)
                        elif j == n and item is not None:
                            out.append(item)
                else:
                    walk(value, j, out)

    def walk_all(source: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        walk(source, 0, out)
        return out

    def leaf(value: Any, out: list[Any]) -> None:  # an array at the path's end: flattened, nulls dropped
        if type(value) is list:
            for item in value:
                leaf(item, out)
        elif value is not None:
            out.append(value)

    # The usual shape, plain nested objects, read by generated code (dac.query.codegen, as the
    # query DSL's fields are); a dotted spelling of the path or an array on the way: walk_all.
    return codegen.path_getter(parts, walk_all, leaf)


# ---- per-type conversion of source values ------------------------------------


def _as_text(value: Any) -> str | None:
    """What a keyword/text mapper indexes for a JSON scalar (objects and arrays are not values)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def _as_integral(value: Any, bounds: tuple[int, int]) -> int | None:
    """Numeric mappers coerce numeric strings and truncate decimals; out of range is malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip()) if re.search(r"[.eE]", value) else int(value.strip())
        except ValueError:
            return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value)
    if isinstance(value, int) and bounds[0] <= value <= bounds[1]:
        return value
    return None


def _as_double(value: Any, storage: str) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    if number is None or not math.isfinite(number):
        return None
    if storage == "float":  # stored as float32 doc values, read back widened
        return struct.unpack("f", struct.pack("f", number))[0]
    if storage == "half_float":
        return struct.unpack("e", struct.pack("e", number))[0]
    return number


def _as_boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "false", ""):  # BooleanFieldMapper: "" is false
        return value == "true"
    return None


_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?"
)


def parse_datetime(value: Any) -> int | None:
    """``strict_date_optional_time||epoch_millis`` (the date mapper default) to epoch milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"-?\d+", value) and len(value.lstrip("-")) > 4:
        return int(value)
    m = _DATE.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    millis = int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
    return millis + (int((fraction or "0").ljust(3, "0")[:3]))


def format_datetime(millis: int) -> str:
    """How ES|QL prints a datetime: ISO-8601 UTC with milliseconds."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _as_ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _ip_key(text: str) -> bytes:
    address = ipaddress.ip_address(text)
    if address.version == 4:
        return b"\0" * 10 + b"\xff\xff" + address.packed
    return address.packed


def field_loader(spec: FieldSpec, source_path: str) -> Callable[[dict[str, Any]], Any]:
    """Source -> the column value ES|QL produces for this field: None, a value, or a list of values.

    ``source_path`` is where the values sit in ``_source``: the field's own name,
    or its parent's for a multi-field such as ``message.keyword``.
    """
    read = path_reader(source_path)
    kind = esql_type(spec.type)
    if kind == "unsupported":
        return lambda source: None
    if kind == "keyword":
        limit = spec.ignore_above

        def load_keyword(source: dict[str, Any]) -> Any:
            raw = read(source)
            if not raw:
                return None
            if len(raw) == 1 and type(raw[0]) is str:
                text = raw[0]
                # java_length is at most twice len: a short text needs no count
                if limit is not None and 2 * len(text) > limit and java_length(text) > limit:
                    return None
                return text
            values = {
                t for t in map(_as_text, raw) if t is not None and (limit is None or java_length(t) <= limit)
            }
            return _fold(sorted(values))

        return load_keyword
    if kind == "text":
        return lambda source: _fold([t for t in map(_as_text, read(source)) if t is not None])
    convert: Callable[[Any], Any]
    key: Callable[[Any], Any] | None = None
    unique = False
    if kind == "integer":
        convert = lambda v: _as_integral(v, _INT_RANGE)  # noqa: E731
    elif kind == "long":
        convert = lambda v: _as_integral(v, _LONG_RANGE)  # noqa: E731
    elif kind == "double":
        convert = lambda v: _as_double(v, spec.type)  # noqa: E731
    elif kind == "boolean":
        convert = _as_boolean
    elif kind == "datetime":
        convert = parse_datetime
    else:  # ip: sorted set doc values, ordered by the 16-byte encoding
        convert, key, unique = _as_ip, _ip_key, True

    def load(source: dict[str, Any]) -> Any:
        values = [v for v in map(convert, read(source)) if v is not None]
        if unique:
            values = list(dict.fromkeys(values))
        values.sort(key=key)
        return _fold(values)

    return load


def _fold(values: list[Any]) -> Any:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


# ---- printing --------------------------------------------------------------------


def java_double_string(value: float) -> str:
    """``Double.toString``: shortest round-trip digits, scientific outside [1e-3, 1e7)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        return repr(value)  # plain notation in this range, like Java
    sign = "-" if value < 0 else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    exponent = int(exp_text or 0)
    whole, _, fraction = mantissa.partition(".")
    if whole.strip("0"):
        exponent += len(whole.lstrip("0")) - 1
        digits = (whole.lstrip("0") + fraction).rstrip("0")
    else:
        significant = fraction.lstrip("0")
        exponent -= len(fraction) - len(significant) + 1
        digits = significant.rstrip("0")
    digits = digits or "0"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def to_text(value: Any, kind: str) -> str:
    """TO_STRING of one value of ES|QL type ``kind``."""
    if kind in STRING_TYPES or kind == "ip":
        return value
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "double":
        return java_double_string(value)
    if kind == "datetime":
        return format_datetime(value)
    return str(value)


def output(value: Any, kind: str) -> Any:
    """A value as the ES|QL JSON response shows it."""
    if value is None or kind != "datetime":
        return value
    if type(value) is list:
        return [format_datetime(v) for v in value]
    return format_datetime(value)


# Java Character.isWhitespace: Unicode space separators except no-break spaces, plus \t-\r and \x1c-\x1f.
JAVA_WHITESPACE = "".join(
    ch
    for ch in map(chr, range(0x3001))
    if ch in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
    or (unicodedata.category(ch) in ("Zs", "Zl", "Zp") and ch not in "\u00a0\u2007\u202f")
)

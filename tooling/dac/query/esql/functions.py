"""ES|QL scalar functions, compiled once into closures over a row.

Shared rules, from the generated evaluators of x-pack/plugin/esql: a null
argument gives null; a multi-valued argument to a single-valued function gives
null (ES adds a warning), except the conversion-style functions (``TO_LOWER``,
``TO_UPPER``, ``TO_STRING``) that convert each value, and the functions made
for multi-values (``MV_*``, ``COALESCE``). Strings are Python ``str``: since
the FROM_BASE64 fix backported to 9.4/9.5 (elastic/elasticsearch#154955), no
ES|QL string can hold bytes that are not UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dac.errors import QueryError, UnsupportedQueryError
from dac.mapping import java_length
from dac.query.esql import catalogue, json_extract, regex
from dac.query.esql import syntax as s
from dac.query.esql.values import JAVA_WHITESPACE, STRING_TYPES, to_text

Row = dict[int, Any]


@dataclass(frozen=True)
class Compiled:
    """A compiled expression: ``fn(row)`` gives its value; ``type`` is its ES|QL type."""

    fn: Callable[[Row], Any]
    type: str
    constant: bool = False


def constant(value: Any, kind: str) -> Compiled:
    return Compiled(lambda row: value, kind, True)


def fold(result: Compiled, args: Sequence[Compiled]) -> Compiled:
    """Evaluate once when every argument is constant, as the ES planner folds it."""
    if args and all(a.constant for a in args):
        return constant(result.fn({}), result.type)
    return result


AGGREGATES = frozenset({"COUNT", "COUNT_DISTINCT", "MIN", "MAX", "SUM", "AVG", "VALUES"})
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")


def _type_error(call: s.Call, index: int, expected: str, kind: str) -> QueryError:
    arg = call.args[index]
    ordinal = _ORDINALS[index] if index < len(_ORDINALS) else f"#{index + 1}"
    return QueryError(
        f"ES|QL: {ordinal} argument of [{call.text}] must be [{expected}], found value "
        f"[{arg.text}] type [{kind}]",
        call.line,
        call.column,
    )


def _check(
    call: s.Call, args: Sequence[Compiled], index: int, allowed: frozenset[str] | set[str], expected: str
) -> None:
    kind = args[index].type
    if kind != "null" and kind not in allowed:
        raise _type_error(call, index, expected, kind)


def _arity(call: s.Call) -> None:
    """The argument count the ES|QL catalogue gives for the function (one source of truth)."""
    wrong = catalogue.arity_problem(call)
    if wrong is not None:
        raise wrong


def _scalar(args: Sequence[Compiled], fn: Callable[..., Any], kind: str, per_value: bool = False) -> Compiled:
    """null in -> null out; a multi-value -> null, or ``fn`` on each value when ``per_value``."""
    if len(args) == 1:
        arg = args[0].fn
        if per_value:

            def run(row: Row) -> Any:
                v = arg(row)
                if v is None:
                    return None
                if type(v) is list:
                    out = [r for r in map(fn, v) if r is not None]
                    return out if len(out) > 1 else (out[0] if out else None)
                return fn(v)
        else:

            def run(row: Row) -> Any:
                v = arg(row)
                if v is None or type(v) is list:
                    return None
                return fn(v)
    else:
        fns = [a.fn for a in args]

        def run(row: Row) -> Any:
            values = []
            for f in fns:
                v = f(row)
                if v is None or type(v) is list:
                    return None
                values.append(v)
            return fn(*values)

    return fold(Compiled(run, kind), args)


def build_call(call: s.Call, args: list[Compiled]) -> Compiled:
    """Compile a scalar function call whose arguments are already compiled."""
    builder = _BUILDERS.get(call.name)
    if builder is not None:
        return builder(call, args)
    if call.name in AGGREGATES:
        raise QueryError(
            f"ES|QL: aggregate function [{call.text}] not allowed outside STATS command",
            call.line,
            call.column,
        )
    if catalogue.function(call.name) is not None:
        raise UnsupportedQueryError(f"ES|QL: unsupported function {call.name}", call.line, call.column)
    raise QueryError(f"ES|QL: Unknown function [{call.name.lower()}]", call.line, call.column)


_BUILDERS: dict[str, Callable[[s.Call, list[Compiled]], Compiled]] = {}


def _builder(
    *names: str,
) -> Callable[[Callable[[s.Call, list[Compiled]], Compiled]], Callable[[s.Call, list[Compiled]], Compiled]]:
    def register(
        fn: Callable[[s.Call, list[Compiled]], Compiled],
    ) -> Callable[[s.Call, list[Compiled]], Compiled]:
        for name in names:
            _BUILDERS[name] = fn
        return fn

    return register


def _strings(call: s.Call, args: list[Compiled]) -> None:
    _arity(call)
    for i in range(len(args)):
        _check(call, args, i, STRING_TYPES, "string")


@_builder("TO_LOWER", "TO_UPPER")
def _change_case(call: s.Call, args: list[Compiled]) -> Compiled:
    # ChangeCase.java: a @ConvertEvaluator, so each value of a multi-value is converted.
    _strings(call, args)
    return _scalar(args, str.lower if call.name == "TO_LOWER" else str.upper, "keyword", per_value=True)


@_builder("LENGTH")
def _length(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)
    return _scalar(args, len, "integer")  # code points (UnicodeUtil.codePointCount)


@_builder("CONCAT")
def _concat(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)
    return _scalar(args, lambda *parts: "".join(parts), "keyword")


@_builder("STARTS_WITH", "ENDS_WITH")
def _starts_ends(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)
    method = str.startswith if call.name == "STARTS_WITH" else str.endswith
    return _scalar(args, method, "boolean")


def _index_start(length: int, start: int) -> int:
    """Substring/Locate.indexStart: 1-based, 0 counts as 1, negative counts from the end."""
    index = start - 1 if start > 0 else length + start if start < 0 else 0
    return min(max(0, index), length)


@_builder("SUBSTRING")
def _substring(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    _check(call, args, 0, STRING_TYPES, "string")
    for i in range(1, len(args)):
        _check(call, args, i, {"integer"}, "integer")

    def substring(text: str, start: int, length: int | None = None) -> str | None:
        if length is not None and length < 0:
            return None  # "Length parameter cannot be negative": null with a warning
        begin = _index_start(len(text), start)
        end = len(text) if length is None else min(len(text), begin + length)
        return text[begin:end]

    return _scalar(args, substring, "keyword")


@_builder("LOCATE")
def _locate(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    _check(call, args, 0, STRING_TYPES, "string")
    _check(call, args, 1, STRING_TYPES, "string")
    if len(args) == 3:
        _check(call, args, 2, {"integer"}, "integer")

    def locate(text: str, sub: str, start: int | None = None) -> int:
        # Locate.java: 1 + String.indexOf(sub, fromIndex), so the answer counts UTF-16 units.
        if len(text.encode()) < len(sub.encode()):
            return 0
        begin = 0 if start is None else _index_start(len(text), start)
        found = text.find(sub, begin)
        return 0 if found < 0 else 1 + java_length(text[:found])

    return _scalar(args, locate, "integer")


@_builder("TRIM", "LTRIM", "RTRIM")
def _trim(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)
    method = {"TRIM": str.strip, "LTRIM": str.lstrip, "RTRIM": str.rstrip}[call.name]
    return _scalar(args, lambda text: method(text, JAVA_WHITESPACE), "keyword")


@_builder("SPLIT")
def _split(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)

    def split(text: str, delimiter: str) -> Any:
        if len(delimiter.encode()) != 1:
            return None  # "delimiter must be single byte for now": null with a warning
        parts = text.split(delimiter)
        return parts if len(parts) > 1 else parts[0]

    return _scalar(args, split, "keyword")


@_builder("TO_STRING")
def _to_string(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    kind = args[0].type
    if kind in ("unsupported", "source"):
        raise _type_error(call, 0, "any type except counter types or unsupported", kind)
    return _scalar(args, lambda value: to_text(value, kind), "keyword", per_value=True)


def java_base64_decode(text: str) -> bytes | None:
    """``Base64.getDecoder().decode``: strict alphabet, optional but well-placed padding."""
    if not text.isascii():
        return None
    body, _, padding = text.partition("=")
    if padding.strip("=") or not re.fullmatch(r"[A-Za-z0-9+/]*", body):
        return None
    rest = len(body) % 4
    if rest == 1:
        return None  # "Last unit does not have enough valid bits"
    if "=" in text:
        pad = len(text) - len(body)
        if rest == 0 or (rest == 2 and pad != 2) or (rest == 3 and pad != 1):
            return None  # "Input byte array has wrong 4-byte ending unit" / "incorrect ending byte"
    try:
        return binascii.a2b_base64(body + "=" * ((4 - rest) % 4))
    except binascii.Error:
        return None


@_builder("FROM_BASE64")
def _from_base64(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)

    def decode(text: str) -> str | None:
        # FromBase64Tests.java: invalid base64, or bytes that are not UTF-8, give null with a warning.
        raw = java_base64_decode(text)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None

    return _scalar(args, decode, "keyword")


@_builder("TO_BASE64")
def _to_base64(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)
    return _scalar(args, lambda text: base64.b64encode(text.encode()).decode("ascii"), "keyword")


@functools.lru_cache(maxsize=256)
def _dynamic_regex(
    pattern: str, replacement: str
) -> tuple[re.Pattern[str], Callable[[re.Match[str]], str]] | None:
    try:
        compiled = regex.java_regex(pattern)
    except UnsupportedQueryError:
        raise
    except QueryError:
        return None  # PatternSyntaxException from a per-row pattern: null with a warning
    return compiled.compiled, regex.java_replacement(compiled, replacement)


# Rules rendered from one template run the same REPLACE on the same text of each event (the CSR
# subject rules: two regular expressions over each decoded request), one rule after the other
# over a batch; the second finds the first's result here. Texts up to this size, the last 256.
_SHARED_REPLACE_CHARS = 16_384


@functools.lru_cache(maxsize=256)
def _shared_replace(pattern: str, replacement: str, text: str) -> str | None:
    found = _dynamic_regex(pattern, replacement)
    return None if found is None else found[0].sub(found[1], text)


@_builder("REPLACE")
def _replace(call: s.Call, args: list[Compiled]) -> Compiled:
    _strings(call, args)
    if args[1].constant and args[2].constant:
        pattern, replacement = args[1].fn({}), args[2].fn({})
        if pattern is None or replacement is None:
            return constant(None, "keyword")
        try:
            compiled = regex.java_regex(pattern)
        except QueryError as exc:
            exc.query_line, exc.query_column = call.args[1].line, call.args[1].column
            raise
        expand = regex.java_replacement(compiled, replacement)
        sub = compiled.compiled.sub

        def replace_constant(text: str) -> str:
            if len(text) > _SHARED_REPLACE_CHARS:
                return sub(expand, text)
            return _shared_replace(pattern, replacement, text)  # type: ignore[return-value]

        return _scalar(args[:1], replace_constant, "keyword")

    def replace(text: str, pattern: str, replacement: str) -> str | None:
        found = _dynamic_regex(pattern, replacement)
        return None if found is None else found[0].sub(found[1], text)

    return _scalar(args, replace, "keyword")


@_builder("JSON_EXTRACT")
def _json_extract(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    _check(call, args, 0, STRING_TYPES | {"source"}, "keyword, text or _source")
    _check(call, args, 1, STRING_TYPES, "string")

    def extract(document: Any, segments: list[json_extract.Segment]) -> str | None:
        if isinstance(document, dict):
            return json_extract.extract_from_source(document, segments)
        return json_extract.extract_from_text(document, segments)

    if args[1].constant:
        path = args[1].fn({})
        if path is None:
            return constant(None, "keyword")
        segments = json_extract.compile_path(path, call.args[1].line, call.args[1].column)
        return _scalar(args[:1], lambda document: extract(document, segments), "keyword")

    def dynamic(document: Any, path: str) -> str | None:
        try:
            segments = json_extract.parse_path(path)
        except json_extract.JsonPathError:
            return None
        return extract(document, segments)

    return _scalar(args, dynamic, "keyword")


def _common_type(call: s.Call, args: Sequence[Compiled], indices: Sequence[int]) -> str:
    """The one type the given arguments share (keyword and text mix as keyword)."""
    kinds = {args[i].type for i in indices} - {"null"}
    if kinds <= STRING_TYPES and len(kinds) == 2:
        return "keyword"
    if len(kinds) > 1:
        first = args[indices[0]].type
        for i in indices:
            if args[i].type not in (first, "null"):
                raise QueryError(
                    f"ES|QL: {_ORDINALS[min(i, 5)]} argument of [{call.text}] must be [{first}], "
                    f"found value [{call.args[i].text}] type [{args[i].type}]",
                    call.line,
                    call.column,
                )
    return kinds.pop() if kinds else "null"


@_builder("COALESCE")
def _coalesce(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    kind = _common_type(call, args, range(len(args)))
    fns = [a.fn for a in args]

    def coalesce(row: Row) -> Any:
        for f in fns:
            v = f(row)
            if v is not None:
                return v  # a multi-value is returned whole
        return None

    return fold(Compiled(coalesce, kind), args)


@_builder("CASE")
def _case(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    pairs = len(args) // 2
    for i in range(pairs):
        _check(call, args, 2 * i, {"boolean"}, "boolean")
    value_indices = [2 * i + 1 for i in range(pairs)] + ([len(args) - 1] if len(args) % 2 else [])
    kind = _common_type(call, args, value_indices)
    branches = [(args[2 * i].fn, args[2 * i + 1].fn) for i in range(pairs)]
    otherwise = args[-1].fn if len(args) % 2 else None

    def case(row: Row) -> Any:
        for condition, value in branches:
            if condition(row) is True:  # null and multi-valued conditions count as false
                return value(row)
        return otherwise(row) if otherwise is not None else None

    return fold(Compiled(case, kind), args)


@_builder("MV_COUNT")
def _mv_count(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    arg = args[0].fn

    def count(row: Row) -> int | None:
        v = arg(row)
        return None if v is None else len(v) if type(v) is list else 1

    return fold(Compiled(count, "integer"), args)


@_builder("MV_FIRST", "MV_LAST")
def _mv_first_last(call: s.Call, args: list[Compiled]) -> Compiled:
    _arity(call)
    arg = args[0].fn
    index = 0 if call.name == "MV_FIRST" else -1

    def pick(row: Row) -> Any:
        v = arg(row)
        return v[index] if type(v) is list else v

    return fold(Compiled(pick, args[0].type), args)

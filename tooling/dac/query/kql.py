"""KQL: parse it as Kibana does, and translate it to the DSL Kibana's detection engine sends.

The grammar (``kql.lark``) mirrors Kibana's PEG grammar; the node types mirror Kibana's
KQL functions (``is``, ``range``, ``nested``, ``and``, ``or``, ``not``), and :func:`to_dsl`
mirrors their ``toElasticsearchQuery`` (elastic/kibana
``src/platform/packages/shared/kbn-es-query/src/kuery/functions/*.ts``) with the options the
security solution's query rule passes (``rule_types/utils/get_query_filter_load_fields.ts``):
``allowLeadingWildcards: true``, ``dateFormatTZ: 'Zulu'``, no ``caseInsensitive``, no
``nestedIgnoreUnmapped``, and a data view holding only the fields the query names, typed
from field_caps. That last point decides the query per field type: ``term``/``wildcard`` on
fields whose only ES type is ``keyword``, a ``range`` on date fields, ``match``/
``match_phrase``/``query_string`` on everything else, including fields the index lacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dac.errors import QueryError
from dac.mapping import FieldSpec, IndexMapping
from dac.query.kql_parser import kql_parser

# JavaScript's String.prototype.trim() whitespace (Kibana trims unquoted literals with it).
_JS_WHITESPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Value:
    """A KQL literal after unescaping.

    ``text`` is None/True/False for the unquoted words ``null``/``true``/``false`` (Kibana
    builds those as non-string literals). ``wildcard`` holds the literal pieces around each
    unescaped ``*`` when the value is a pattern; ``text`` is then the pieces joined by ``*``.
    """

    text: str | bool | None
    quoted: bool = False
    wildcard: tuple[str, ...] | None = None

    @property
    def is_lone_wildcard(self) -> bool:
        """Exactly one ``*`` and nothing else: Kibana's "exists" value (``**`` is not)."""
        return self.wildcard == ("", "")


@dataclass(frozen=True)
class Field:
    """A field name as written; ``name`` is None for the unquoted word ``null`` (free text)."""

    name: str | None
    wildcard: tuple[str, ...] | None
    line: int
    column: int


@dataclass(frozen=True)
class MatchAll:
    """The empty query (Kibana parses it to ``*:*``)."""


@dataclass(frozen=True)
class Is:
    """``field:value``; ``field`` None is a free-text search."""

    field: Field | None
    value: Value


@dataclass(frozen=True)
class Exists:
    """``field:*``."""

    field: Field


@dataclass(frozen=True)
class Range:
    field: Field
    op: str  # gt | gte | lt | lte
    value: Value


@dataclass(frozen=True)
class Nested:
    path: Field
    query: KqlNode


@dataclass(frozen=True)
class And:
    children: tuple[KqlNode, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[KqlNode, ...]


@dataclass(frozen=True)
class Not:
    child: KqlNode


KqlNode = MatchAll | Is | Exists | Range | Nested | And | Or | Not


@dataclass(frozen=True)
class FieldRef:
    """A field the query names, at its place in the query text (1-based)."""

    name: str
    line: int
    column: int


# --------------------------------------------------------------------------- parsing


@lru_cache(maxsize=128)  # bounded: the tree of a long query holds tens of KB
def parse_kql(text: str) -> KqlNode:
    """Parse KQL exactly as Kibana accepts it; syntax errors raise a located QueryError.

    Memoized: the tree is immutable, and validation, the engine's compiled query and its needles
    all parse the same rule's query in one run.
    """
    try:
        tree = kql_parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    query = tree.children[0]
    return MatchAll() if query is None else _build(query)


_UNQUOTED_PIECE = re.compile(
    r'\\([trn])|\\([\\():<>"*{}])|\\u([0-9a-fA-F]{4})|\\((?i:or|and|not))|(\*)|([\s\S])'
)
_QUOTED_PIECE = re.compile(r'\\([trn])|\\u([0-9a-fA-F]{4})|\\([\\"])|([\s\S])')
_ESCAPED_WHITESPACE = {"t": "\t", "r": "\r", "n": "\n"}


def _literal(token: Token) -> Value:
    # Without a backslash there is nothing to unescape: every character stands for itself
    # (and, unquoted, each ``*`` is a wildcard), as the piece-by-piece reading below gives.
    if token.type == "QUOTED":
        body = token.value[1:-1]
        if "\\" not in body:
            return Value(body, quoted=True)
        chars = []
        for ws, hexa, esc, char in _QUOTED_PIECE.findall(body):
            chars.append(_ESCAPED_WHITESPACE[ws] if ws else chr(int(hexa, 16)) if hexa else esc or char)
        return Value("".join(chars), quoted=True)
    if "\\" not in token.value:
        parts = token.value.split("*")
    else:
        pieces: list[list[str]] = [[]]
        for ws, special, hexa, keyword, star, char in _UNQUOTED_PIECE.findall(token.value):
            if star:
                pieces.append([])
            elif ws:
                pieces[-1].append(_ESCAPED_WHITESPACE[ws])
            elif hexa:
                pieces[-1].append(chr(int(hexa, 16)))
            else:
                pieces[-1].append(special or keyword or char)
        parts = ["".join(p) for p in pieces]
    parts[0] = parts[0].lstrip(_JS_WHITESPACE)
    parts[-1] = parts[-1].rstrip(_JS_WHITESPACE)
    if len(parts) > 1:
        return Value("*".join(parts), wildcard=tuple(parts))
    word = parts[0]
    return Value({"null": None, "true": True, "false": False}.get(word, word))


def _field(tree: Tree) -> Field:
    token = tree.children[0]
    value = _literal(token)
    name = None if value.text is None else _js_string(value.text)
    return Field(name, value.wildcard, token.line, token.column)


def _js_string(value: str | bool) -> str:
    """How JavaScript turns a literal into an object key (``true`` -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


_RANGE_OPS = {"<=": "lte", ">=": "gte", "<": "lt", ">": "gt"}


def _build(tree: Tree | Token) -> KqlNode:
    if isinstance(tree, Token):  # a bare literal reduced by "?literal"
        return _free_text(tree)
    kind, kids = tree.data, tree.children
    if kind == "or_query":
        return Or(tuple(_build(k) for k in kids if not _is_op(k)))
    if kind == "and_query":
        return And(tuple(_build(k) for k in kids if not _is_op(k)))
    if kind == "not_":
        return Not(_build(kids[1]))
    if kind == "group":
        return _build(kids[1])
    if kind == "nested":
        return Nested(_field(kids[0]), _build(kids[3]))
    if kind == "range":
        return Range(_field(kids[0]), _RANGE_OPS[kids[1].value.strip(_JS_WHITESPACE)], _literal(kids[2]))
    if kind == "field_value":
        return _values(kids[2], _field(kids[0]))
    if kind == "free_text":
        return _free_text(kids[0])
    raise AssertionError(f"unexpected KQL tree {kind}")


def _free_text(token: Token) -> KqlNode:
    return Is(None, _literal(token))


def _is_op(node: Tree | Token) -> bool:
    return isinstance(node, Token) and node.type in ("OR", "AND")


def _values(tree: Tree | Token, field: Field) -> KqlNode:
    """Distribute ``field`` over a value list such as ``(a or b and not c)``."""
    if isinstance(tree, Token):
        value = _literal(tree)
        if field.name is None:
            return Is(None, value)
        return Exists(field) if value.is_lone_wildcard else Is(field, value)
    kind, kids = tree.data, tree.children
    if kind == "list_group":
        return _values(kids[1], field)
    if kind == "list_not":
        return Not(_values(kids[1], field))
    parts = tuple(_values(k, field) for k in kids if not _is_op(k))
    if len(parts) == 1:
        return parts[0]
    return Or(parts) if kind == "list_or" else And(parts)


# --------------------------------------------------------------------------- syntax errors

_DESCRIPTIONS = {
    "QUOTED": "a value",
    "UNQUOTED": "a value",
    "LPAREN": '"("',
    "RPAREN": '")"',
    "LBRACE": '"{"',
    "RBRACE": '"}"',
    "COLON": '":"',
    "RANGE_OP": "a comparison (<, <=, >, >=)",
    "OR": '"or"',
    "AND": '"and"',
    "NOT": '"not"',
    "$END": "the end of the query",
}


def _syntax_error(text: str, exc: UnexpectedInput) -> QueryError:
    if isinstance(exc, UnexpectedToken):
        expected = set(exc.expected)
        token = exc.token
        if token.type == "$END":
            found, offset = "the end of the query", len(text)
        else:
            lead = len(token.value) - len(token.value.lstrip(_JS_WHITESPACE))
            found, offset = _quote(token.value.strip(_JS_WHITESPACE) or token.value), token.start_pos + lead
    else:
        assert isinstance(exc, UnexpectedCharacters)
        expected = set(exc.allowed)
        found, offset = _quote(text[exc.pos_in_stream]), exc.pos_in_stream
        if text[offset] == '"':
            expected = {"UNTERMINATED"}
    parser = getattr(exc, "interactive_parser", None)
    if parser is not None and expected != {"UNTERMINATED"}:
        expected = set(parser.accepts())  # the lexer's list can be wider than what parses
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return QueryError(f"KQL: {_expectation(expected, _last_tokens(exc))} but found {found}", line, column)


def _last_tokens(exc: UnexpectedInput) -> list[Token]:
    """The tokens the parser had shifted when it stopped, in order."""
    parser = getattr(exc, "interactive_parser", None)
    if parser is None:
        return []
    return [t for item in parser.parser_state.value_stack for t in _tokens(item)]


def _tokens(item: Tree | Token | None) -> list[Token]:
    if isinstance(item, Token):
        return [item]
    if isinstance(item, Tree):
        return [t for child in item.children for t in _tokens(child)]
    return []


_AFTER_OPERATOR = {"OR", "AND", "NOT", "LPAREN", "LBRACE"}


def _expectation(expected: set[str], shifted: list[Token]) -> str:
    wanted = []
    for name in ("UNQUOTED", "LPAREN", "LBRACE", "NOT", "COLON", "RANGE_OP", "AND", "OR",
                 "RPAREN", "RBRACE", "$END"):
        if name in expected and _DESCRIPTIONS[name] not in wanted:
            wanted.append(_DESCRIPTIONS[name])
    if "a value" in wanted and shifted:
        last = shifted[-1]
        op = last.value.strip(_JS_WHITESPACE)
        if last.type in ("COLON", "RANGE_OP") and len(shifted) > 1:
            field = shifted[-2].value.strip(_JS_WHITESPACE)
            return f"expected a value after {_quote(field + op if last.type == 'COLON' else f'{field} {op}')}"
        if last.type in _AFTER_OPERATOR:
            return f"expected a query after {_quote(op)}"
    if expected == {"UNTERMINATED"}:
        return "expected a closing double quote for the quoted string"
    if not wanted:
        return "unexpected input"
    return "expected " + (wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " or " + wanted[-1])


_QUOTED_MAX = 40  # a token quoted in a message is cut here: a quoted string can run to the end of the query
_VISIBLE = str.maketrans({'"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028",
                          "\u2029": "\\u2029", "\x00": "\\u0000"})


def _quote(text: str) -> str:
    """``text`` in double quotes on one line (line breaks escaped), at most _QUOTED_MAX characters."""
    if len(text) > _QUOTED_MAX:
        text = text[: _QUOTED_MAX - 1] + "…"
    return '"' + text.translate(_VISIBLE) + '"'


# --------------------------------------------------------------------------- fields


def referenced_fields(node: KqlNode) -> list[FieldRef]:
    """Every field the query names, in query order; nested paths and inner fields by full name."""
    found: list[FieldRef] = []
    _collect(node, "", found)
    return found


def _collect(node: KqlNode, prefix: str, found: list[FieldRef]) -> None:
    match node:
        case And(children) | Or(children):
            for child in children:
                _collect(child, prefix, found)
        case Not(child):
            _collect(child, prefix, found)
        case Nested(path, query):
            if path.name is not None:
                found.append(FieldRef(prefix + path.name, path.line, path.column))
                _collect(query, f"{prefix}{path.name}.", found)
        case Is(field) | Exists(field) | Range(field):
            if field is not None and field.name is not None:
                found.append(FieldRef(prefix + field.name, field.line, field.column))
        case MatchAll():
            pass


# --------------------------------------------------------------------------- DSL

DATE_TYPES = frozenset({"date", "date_nanos"})  # Kibana's "date" field type


def to_dsl(query: KqlNode | str, mapping: IndexMapping | None = None) -> dict[str, Any]:
    """The ``bool`` query Kibana's ``buildEsQuery`` makes of this KQL for a query rule.

    ``mapping`` plays the data view: None means Kibana knew no fields (every value becomes
    ``match``/``match_phrase``/``query_string``). Filters and exceptions are not included.
    See elastic/kibana ``kbn-es-query/src/es_query/build_es_query.ts`` and ``from_kuery.ts``.
    """
    node = parse_kql(query) if isinstance(query, str) else query
    dsl = _Translator(_data_view(node, mapping)).query(node, None)
    # from_kuery wraps the query in an "and" (bool.filter), build_es_query drops match_all.
    kept = [] if dsl == {"match_all": {}} else [dsl]
    return {"bool": {"must": [], "filter": kept, "should": [], "must_not": []}}


def _data_view(node: KqlNode, mapping: IndexMapping | None) -> dict[str, FieldSpec]:
    """The fields the query rule's data view holds: those ``getKqlFieldNames`` names.

    Kibana loads them with field_caps (rule_types/utils/get_query_filter_load_fields.ts and
    kuery/utils/get_kql_fields.ts): exact names and wildcard patterns from ``is``/``range``
    clauses, and only the path of a nested group, never the fields inside it.
    """
    if mapping is None:
        return {}
    loaded: dict[str, FieldSpec] = {}
    for field in _top_fields(node):
        for spec in _matching(field, mapping.fields):
            loaded[spec.name] = spec
    return dict(sorted(loaded.items()))


def _top_fields(node: KqlNode) -> list[Field]:
    match node:
        case And(children) | Or(children):
            return [f for child in children for f in _top_fields(child)]
        case Not(child):
            return _top_fields(child)
        case Nested(field) | Is(field) | Exists(field) | Range(field):
            return [field] if field is not None and field.name is not None else []
    return []


def _matching(field: Field, fields: dict[str, FieldSpec], prefix: str = "") -> list[FieldSpec]:
    """Kibana's getFields: exact name, or a wildcard where ``*`` matches anything."""
    if field.wildcard is None:
        spec = fields.get(prefix + (field.name or ""))
        return [spec] if spec is not None else []
    regex = re.compile(re.escape(prefix) + ".*".join(re.escape(p) for p in field.wildcard), re.DOTALL)
    return [spec for name, spec in fields.items() if regex.fullmatch(name)]


class _Translator:
    """One KQL function's ``toElasticsearchQuery`` per method (nested context as ``path``)."""

    def __init__(self, data_view: dict[str, FieldSpec]) -> None:
        self.data_view = data_view

    def query(self, node: KqlNode, path: str | None) -> dict[str, Any]:
        match node:
            case MatchAll():
                return {"match_all": {}}
            case And(children):
                return {"bool": {"filter": [self.query(c, path) for c in children]}}
            case Or(children):
                should = [self.query(c, path) for c in children]
                return {"bool": {"should": should, "minimum_should_match": 1}}
            case Not(child):
                return {"bool": {"must_not": self.query(child, path)}}
            case Nested(field, inner):
                name = field.name if field.name is not None else "null"
                full = f"{path}.{name}" if path else name
                return {"nested": {"path": full, "query": self.query(inner, full), "score_mode": "none"}}
            case Exists(field):
                return self.exists(field, path)
            case Is(field, value):
                return self.is_(field, value, path)
            case Range(field, op, value):
                return self.range(field, op, value, path)
        raise AssertionError(f"unexpected KQL node {node!r}")

    def exists(self, field: Field, path: str | None) -> dict[str, Any]:
        if field.wildcard == ("", ""):
            return {"match_all": {}}
        queries = [self._nest({"exists": {"field": spec.name}}, spec, field, path)
                   for spec in self.fields(field, path)]
        return {"bool": {"should": queries, "minimum_should_match": 1}}

    def is_(self, field: Field | None, value: Value, path: str | None) -> dict[str, Any]:
        if field is None or field.name is None:
            if value.wildcard is not None:
                return {"query_string": {"query": _query_string(value.wildcard)}}
            return {"multi_match": {"type": "phrase" if value.quoted else "best_fields",
                                    "query": value.text, "lenient": True}}
        queries = []
        for spec in self.fields(field, path):
            if value.wildcard is not None:
                pattern = _query_string(value.wildcard)
                query = ({"wildcard": {spec.name: {"value": pattern}}} if spec.type == "keyword"
                         else {"query_string": {"fields": [spec.name], "query": pattern}})
            elif spec.type in DATE_TYPES:
                bounds: dict[str, Any] = {"gte": value.text, "lte": value.text}
                if not _is_epoch(value.text):
                    bounds["time_zone"] = "Zulu"
                query = {"range": {spec.name: bounds}}
            elif spec.type == "keyword":
                query = {"term": {spec.name: {"value": value.text}}}
            else:
                query = {"match_phrase" if value.quoted else "match": {spec.name: value.text}}
            queries.append(self._nest(query, spec, field, path))
        return {"bool": {"should": queries, "minimum_should_match": 1}}

    def range(self, field: Field, op: str, value: Value, path: str | None) -> dict[str, Any]:
        queries = []
        for spec in self.fields(field, path):
            bounds: dict[str, Any] = {op: value.text}
            if spec.type in DATE_TYPES and not _is_epoch(value.text):
                bounds["time_zone"] = "Zulu"
            queries.append(self._nest({"range": {spec.name: bounds}}, spec, field, path))
        return {"bool": {"should": queries, "minimum_should_match": 1}}

    def fields(self, field: Field, path: str | None) -> list[FieldSpec]:
        """getFullFieldNameNode + getFields, falling back to the bare name when none match."""
        full = f"{path}.{field.name}" if path else (field.name or "")
        found = _matching(field, self.data_view, f"{path}." if path else "")
        if field.wildcard is None or path is not None:
            for spec in found:
                if spec.nested_path != path:
                    raise QueryError(f"KQL: {_nesting_problem(spec, path)}", field.line, field.column)
        return found or [FieldSpec(name=full, type="")]

    @staticmethod
    def _nest(query: dict[str, Any], spec: FieldSpec, field: Field, path: str | None) -> dict[str, Any]:
        """A wildcard field name that reaches into a nested object gets its nested query added."""
        if field.wildcard is None or spec.nested_path is None or path is not None:
            return query
        return {"nested": {"path": spec.nested_path, "query": query, "score_mode": "none"}}


def _nesting_problem(spec: FieldSpec, path: str | None) -> str:
    """Kibana's get_full_field_name_node.ts errors, which fail the rule run."""
    if spec.nested_path is None:
        return f'{spec.name} is not a nested field but is in nested group "{path}" in the KQL expression.'
    if path is None:
        return f"{spec.name} is a nested field, but is not in a nested group in the KQL expression."
    return (f"Nested field {spec.name} is being queried with the incorrect nested path. "
            f"The correct path is {spec.nested_path}.")


_QUERY_STRING_RESERVED = re.compile(r'[+\-=&|><!(){}\[\]^"~*?:\\/]')


def _query_string(pieces: tuple[str, ...]) -> str:
    """Kibana's wildcard.toQueryStringQuery: escape each piece, join with ``*``."""
    return "*".join(_QUERY_STRING_RESERVED.sub(lambda m: "\\" + m.group(), p) for p in pieces)


def _is_epoch(value: Any) -> bool:
    """Kibana sends no time zone with epoch values (numbers or digit-only strings)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)) or (
        isinstance(value, str) and re.fullmatch(r"[0-9]+", value) is not None)

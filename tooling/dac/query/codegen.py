"""Straight-line Python generated for the hot paths of query evaluation, from our own tokens only.

A rule runs on every event: its field reads and its ``and``/``or``/``not`` execute millions of
times, and one generated function does that several times faster than a tree of closures
calling each other. Because this module writes Python source, it keeps one strict rule, checked
before anything is compiled (:func:`_define`): the source text holds only names and operators
written here (``node``, ``V3``, ``and``, ``.get(``, ``is None`` …) and no literal of any kind. Every
value that comes from a query, a mapping or a field path (keys, leaf matchers, fallbacks)
reaches the generated function as an argument of the factory that defines it, a closure
variable, never as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Matcher = Callable[[Mapping[str, Any]], bool]
Getter = Callable[[Mapping[str, Any]], list[Any]]

MAX_DEPTH = 30  # and/or/not nesting written as one expression; deeper trees keep their closures
MAX_LEAVES = 2_000
MAX_INLINE_PARTS = 8  # a keyword test on a longer path is called, not written out (parenthesis depth)
_SET_TEST_FROM = 4  # this many dotted spellings or more at one level: one set test instead of ``in`` tests


# --------------------------------------------------------------------------- field paths


def path_getter(parts: Sequence[str], general: Getter, leaf: Callable[[Any, list[Any]], None]) -> Getter:
    """The plain-nested-dicts case of reading a dotted path (see :func:`dac.query.dsl.getter`).

    For ``a.b.c`` it reads ``source["a"]["b"]["c"]`` after checking that none of the dotted
    spellings that reach the path (``a.b``, ``a.b.c``, ``b.c``) is a key on the way; anything
    unusual (such a key, an array or another mapping on the way) goes to ``general``.
    """
    code = _Code(["source"], {"general": general, "leaf": leaf})
    code.line(1, "node = source")
    for level in range(len(parts) - 1):
        code.walk_step(level, parts, [parts], on_odd="return general(source)",
                       on_absent="return []")
    code.line(1, f"value = node.get({code.value(parts[-1])})")
    code.line(1, "if value is None:")
    code.line(2, "return []")
    code.line(1, "if value.__class__ is list:")
    code.line(2, "out = []")
    code.line(2, "leaf(value, out)")
    code.line(2, "return out")
    code.line(1, "return [value]")
    return code.define()


@dataclass(frozen=True)
class _StringTest:
    """See :func:`string_leaf`."""

    parts: tuple[str, ...]
    general: Matcher
    wanted: frozenset[str] | None
    test: Callable[[str], bool] | None


def string_leaf(parts: Sequence[str], general: Matcher, wanted: frozenset[str] | None = None,
                test: Callable[[str], bool] | None = None) -> Matcher:
    """A test on one keyword field that reads its value in place when the walk is plain and the
    value is one string (the usual case): ``value in wanted`` or ``test(value)``.

    No value on a plain walk (the key or an object on the way missing or null) does not match;
    anything else (a dotted key, an array, a number…) goes to ``general``, the same test on
    every value the field holds. :func:`lower` writes it inline in the expression of a tree;
    alone, it runs as this closure (generating code for it would cost more than it saves).
    """
    spec = _StringTest(tuple(parts), general, wanted, test)
    *path, last = spec.parts
    steps = [(key, dotted_spellings(level, [spec.parts])) for level, key in enumerate(path)]
    check = test if wanted is None else wanted.__contains__
    assert check is not None

    def string_test(source: Mapping[str, Any]) -> bool:
        node = source
        for key, dotted in steps:
            for spelling in dotted:
                if spelling in node:
                    return general(source)
            node = node.get(key)
            if node.__class__ is not dict:
                return False if node is None else general(source)
        value = node.get(last)
        if value.__class__ is str:
            return check(value)
        return False if value is None else general(source)

    string_test.inline = spec  # type: ignore[attr-defined]
    return string_test


def dotted_spellings(level: int, paths: Sequence[Sequence[str]]) -> list[str]:
    """The keys at depth ``level`` of a plain walk that would reach one of ``paths`` another way:
    every run of two or more of their parts from ``level`` on, joined with dots."""
    found: dict[str, None] = {}
    for parts in paths:
        for end in range(level + 2, len(parts) + 1):
            found[".".join(parts[level:end])] = None
    return list(found)


# --------------------------------------------------------------------------- and / or / not


def combination(fn: Matcher, kind: str, checks: Sequence[Matcher]) -> Matcher:
    """Mark ``fn`` as the ``kind`` ("and", "or", "nor") of ``checks``, so :func:`lower` can
    write the whole tree as one expression; ``fn`` itself stays a working matcher."""
    fn.combines = (kind, tuple(checks))  # type: ignore[attr-defined]
    return fn


def leaf_rates(matcher: Matcher, sample: Sequence[Mapping[str, Any]]) -> list[float]:
    """How often each leaf of the tree (depth first) matches the ``sample`` documents."""
    rates: list[float] = []
    stack = [matcher]
    while stack:
        node = stack.pop()
        combines = getattr(node, "combines", None)
        if combines is None:
            rates.append(sum(1 for source in sample if node(source)) / len(sample))
        else:
            stack.extend(reversed(combines[1]))
    return rates


def reorder(matcher: Matcher, rates: Sequence[float]) -> Matcher:
    """The tree with the operands of every and/or in the order that settles it soonest, when its
    leaves (depth first) match at ``rates`` and independently: an ``and`` starts with what fails
    most per unit of cost, an ``or`` with what matches most. Every operand is a pure test of the
    document, so the order changes how soon an answer comes, never the answer."""
    if not _fits(matcher):
        return matcher
    leaves = iter(rates)

    def visit(node: Matcher) -> tuple[Matcher, float, float]:  # (tree, match rate, expected cost)
        combines = getattr(node, "combines", None)
        if combines is None:
            return node, next(leaves), 1.0 if isinstance(getattr(node, "inline", None), _StringTest) else 2.0
        kind, checks = combines
        operands = [visit(check) for check in checks]
        if kind == "and":  # settled by the first operand that fails
            operands.sort(key=lambda o: o[2] / max(1.0 - o[1], _RARE))
            go_on = [o[1] for o in operands]
        else:  # or, nor: settled by the first operand that matches
            operands.sort(key=lambda o: o[2] / max(o[1], _RARE))
            go_on = [1.0 - o[1] for o in operands]
        cost, reach = 0.0, 1.0
        for (_, _, operand_cost), rate in zip(operands, go_on, strict=True):
            cost += reach * operand_cost
            reach *= rate
        matched = reach if kind == "and" else 1.0 - reach if kind == "or" else reach
        return _combined(kind, [o[0] for o in operands]), matched, cost

    return visit(matcher)[0]


_RARE = 1e-6  # a rate of 0 or 1 still orders by cost


def _combined(kind: str, checks: list[Matcher]) -> Matcher:
    """A working matcher for an and/or/nor of ``checks`` (lowered into one expression anyway)."""
    if kind == "and":
        return combination(lambda source: all(check(source) for check in checks), kind, checks)
    if kind == "or":
        return combination(lambda source: any(check(source) for check in checks), kind, checks)
    return combination(lambda source: not any(check(source) for check in checks), kind, checks)


def lower(matcher: Matcher, prefix: Sequence[str] = (), paths: Sequence[Sequence[str]] = (),
          general: Matcher | None = None) -> Matcher:
    """One generated function for ``matcher``'s and/or/not tree (see :func:`combination`), its
    keyword tests (:func:`string_leaf`) written inline, other leaves called.

    With a ``prefix`` (``["kubernetes", "audit"]``), the tree's leaves read their fields relative
    to the object at that path (they were compiled so), which is walked to once per document:
    the function checks on the way that no key spells a part of any of ``paths`` (every path the
    leaves read, from the document root) with dots, and hands any document where the walk is not
    plain (such a key, an array or a missing object on the way) to ``general``, the same query
    compiled to read from the root.
    """
    if not _fits(matcher):
        if not prefix:
            return matcher
        matcher = _opaque(matcher)
    if not prefix and getattr(matcher, "combines", None) is None:
        return matcher  # a single leaf is already one function
    code = _Code(["source"], {"general": general})
    code.line(1, "node = source")
    for level in range(len(prefix)):
        code.hoist_step(level, prefix, paths)
    code.line(1, f"return {code.expression(matcher)}")
    return code.define()


def _opaque(matcher: Matcher) -> Matcher:
    """``matcher`` as a leaf that :func:`lower` calls, not writes out."""
    return lambda node: matcher(node)


def _fits(matcher: Matcher) -> bool:
    """Whether the tree is within MAX_DEPTH and MAX_LEAVES (walked without recursion)."""
    count = 0
    stack = [(matcher, 0)]
    while stack:
        node, depth = stack.pop()
        combines = getattr(node, "combines", None)
        if combines is None:
            count += 1
            if count > MAX_LEAVES:
                return False
            continue
        if depth >= MAX_DEPTH:
            return False
        stack.extend((check, depth + 1) for check in combines[1])
    return True


# --------------------------------------------------------------------------- writing and defining


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# What generated source may contain: names, numbers of our own, spaces, newlines and operators.
# No quote, so no string literal; no backslash, hash or brace.
_ALLOWED_SOURCE = re.compile(r"[A-Za-z0-9_ \n():.,=>\[\]]*\Z")


class _Code:
    """One generated function: its lines and the values its factory passes in."""

    def __init__(self, params: list[str], bound: dict[str, Any]) -> None:
        self.params = params
        self.bound = {"dict": dict, "list": list, "str": str, "len": len, **bound}  # builtins too
        self.lines: list[str] = []

    def line(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def bind(self, name: str, value: Any) -> str:
        assert _NAME.match(name) and name not in self.bound, name
        self.bound[name] = value
        return name

    def value(self, value: Any) -> str:
        """A fresh closure variable holding ``value``."""
        return self.bind(f"V{len(self.bound)}", value)

    def walk_step(self, level: int, path: Sequence[str], paths: Sequence[Sequence[str]],
                  on_odd: str, on_absent: str) -> None:
        """``node = node[path[level]]``, checked: no dotted spelling of ``paths`` at this level,
        and the child a dict (``on_absent`` when it is missing or null, ``on_odd`` otherwise)."""
        dotted = self.dotted_test("node", dotted_spellings(level, paths))
        if dotted:
            self.line(1, f"if {dotted}:")
            self.line(2, on_odd)
        self.line(1, f"node = node.get({self.value(path[level])})")
        self.line(1, "if node.__class__ is not dict:")
        if on_absent == on_odd:
            self.line(2, on_odd)
        else:
            self.line(2, "if node is None:")
            self.line(3, on_absent)
            self.line(2, on_odd)

    def hoist_step(self, level: int, prefix: Sequence[str], paths: Sequence[Sequence[str]]) -> None:
        """``node = node[prefix[level]]``, a dict, with no dotted spelling of ``paths`` beside it,
        else ``general(source)``. An object holding one key, the one just read, holds no dotted
        spelling: the set test is skipped then (objects on the way usually hold just one)."""
        self.line(1, "up = node")
        self.line(1, f"node = up.get({self.value(prefix[level])})")
        self.line(1, "if node.__class__ is not dict:")
        self.line(2, "return general(source)")
        dotted = self.dotted_test("up", dotted_spellings(level, paths))
        if dotted:
            self.line(1, f"if len(up) > 1 and ({dotted}):")
            self.line(2, "return general(source)")

    def expression(self, matcher: Matcher) -> str:
        """``matcher`` on ``node`` as one expression (and/or/not trees written out)."""
        combines = getattr(matcher, "combines", None)
        if combines is None:
            inline = getattr(matcher, "inline", None)
            if isinstance(inline, _StringTest) and len(inline.parts) <= MAX_INLINE_PARTS:
                return self.string_test(inline)
            return f"{self.value(matcher)}(node)"
        kind, checks = combines
        parts = [self.expression(check) for check in checks]
        if kind == "and":
            return "(" + " and ".join(parts) + ")"
        if kind == "or":
            return "(" + " or ".join(parts) + ")"
        if kind == "nor":
            return "(not (" + " or ".join(parts) + "))"
        raise AssertionError(f"unknown combination {kind!r}")

    def string_test(self, spec: _StringTest) -> str:
        """:func:`string_leaf` on ``node`` as one expression (``n`` and ``v`` its scratch names)."""
        general = f"{self.value(spec.general)}(node)"
        last = len(spec.parts) - 1
        hit = f"v in {self.value(spec.wanted)}" if spec.wanted is not None else f"{self.value(spec.test)}(v)"
        current = "node" if last == 0 else "n"
        text = (f"(({hit}) if (v := {current}.get({self.value(spec.parts[last])})).__class__ is str "
                f"else (False if v is None else {general}))")
        for level in range(last - 1, -1, -1):
            current = "node" if level == 0 else "n"
            text = (f"({text} if (n := {current}.get({self.value(spec.parts[level])})).__class__ is dict "
                    f"else (False if n is None else {general}))")
            dotted = self.dotted_test(current, dotted_spellings(level, [spec.parts]))
            if dotted:
                text = f"({general} if ({dotted}) else {text})"
        return text

    def dotted_test(self, current: str, dotted: list[str]) -> str:
        """True when ``current`` holds one of the ``dotted`` keys ('' when there are none)."""
        if len(dotted) >= _SET_TEST_FROM:
            return f"not {current}.keys().isdisjoint({self.value(frozenset(dotted))})"
        return " or ".join(f"{self.value(key)} in {current}" for key in dotted)

    def define(self) -> Any:
        names = list(self.bound)
        body = [f"def make({', '.join(names)}):",
                f"    def generated({', '.join(self.params)}):",
                *("    " + line for line in self.lines),
                "    return generated"]
        return _define("\n".join(body), names)(*self.bound.values())


def _define(source: str, names: list[str]) -> Callable[..., Any]:
    """Compile generated source; refuse anything but our own names and operators."""
    if not _ALLOWED_SOURCE.match(source) or not all(_NAME.match(n) for n in names):
        raise AssertionError("generated query code holds something other than its own tokens")
    namespace: dict[str, Any] = {"__builtins__": {}}
    exec(compile(source, "<dac.query.codegen>", "exec"), namespace)  # own tokens only, checked above
    return namespace["make"]

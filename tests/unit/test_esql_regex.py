"""Pattern translation: Lucene RegExp (RLIKE), java.util.regex (REPLACE), Lucene wildcards (LIKE).

Expected behaviour is read off Lucene 10 ``RegExp.java`` (RLikePattern uses RegExp.ALL),
java.util.regex.Pattern/Matcher, and esql-core StringUtils.wildcardToJavaPattern.
"""

from __future__ import annotations

import re

import pytest

from dac.errors import QueryError, UnsupportedQueryError
from dac.query.esql.regex import java_regex, java_replacement, like_to_python, lucene_to_python


def rlike(pattern: str, text: str) -> bool:
    return lucene_to_python(pattern).fullmatch(text) is not None


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("abc", "abc", True),
        ("abc", "xabcx", False),  # the whole string must match
        ("a.c", "a\nc", True),  # '.' is any code point, newlines included
        ("a.c", "a😀c", True),  # one code point, not one UTF-16 unit
        ("[^a]", "\n", True),
        ("[a-c]+", "abcabc", True),
        ("[]a]", "]", True),  # ']' first in a class is a member
        ("[a\\-z]", "-", True),
        ("[\\d]x", "7x", True),
        ("\\d\\s\\w", "1 _", True),
        ("\\s", "\f", False),  # Lucene \s is [ \t\n\r] only
        ("\\D", "a", True),
        ("\\W", "é", True),  # \w is ASCII
        ("a{2}", "aa", True),
        ("a{2,}", "aaaa", True),
        ("a{1,2}", "aaa", False),
        ("a{2}{3}", "aaaaaa", True),  # a repeat of a repeat
        ("a**", "aaa", True),
        ('"a.b"', "a.b", True),  # quoted strings are literal
        ('"a.b"', "axb", False),
        ("a~b", "a~b", True),  # '~' is literal: complement needs DEPRECATED_COMPLEMENT
        ("*x", "*x", True),  # an operator where an atom is expected is a literal
        ("(|a)", "|a", True),
        ("()", "", True),
        ("@", "anything at all", True),  # ANYSTRING
        ("#", "", False),  # the empty language
        ("\\.", ".", True),
        ("\\\\", "\\", True),
        ("([A-Za-z0-9+/]{4})*(MBMx|MIIC).*", "ABCDMBMxrest", True),
        ("([A-Za-z0-9+/]{4})*(MBMx|MIIC).*", "ABCMBMxrest", False),
        ("", "", True),
    ],
)
def test_lucene_regexp(pattern: str, text: str, expected: bool) -> None:
    assert rlike(pattern, text) is expected


def test_lucene_caret_and_dollar_are_literals() -> None:
    assert rlike("^a$", "^a$") is True


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a|", "unexpected end-of-string"),
        ("[a", "expected ']' at position 2"),
        ("(a", "expected ')' at position 2"),
        ("a)", "end-of-string expected at position 1"),
        ("a{3,2}", "invalid repetition range(out of order): 3..2"),
        ("a{x}", "integer expected at position 2"),
        ("[z-a]", "invalid range: from (122) cannot be > to (97)"),
        ("\\q", "invalid character class \\q"),
        ('"open', "expected '\"' at position 5"),
    ],
)
def test_lucene_syntax_errors(pattern: str, message: str) -> None:
    with pytest.raises(QueryError) as err:
        lucene_to_python(pattern)
    assert message in str(err.value)


@pytest.mark.parametrize("pattern", ["a&b", "<1-10>", "<name>"])
def test_lucene_operators_without_python_equivalent_are_unsupported(pattern: str) -> None:
    with pytest.raises(UnsupportedQueryError):
        lucene_to_python(pattern)


def replace_all(pattern: str, text: str, replacement: str) -> str:
    compiled = java_regex(pattern)
    return compiled.compiled.sub(java_replacement(compiled, replacement), text)


@pytest.mark.parametrize(
    ("pattern", "text", "replacement", "expected"),
    [
        ("x*", "abc", "-", "-a-b-c-"),  # empty matches, as Matcher.replaceAll
        ("(a)(b)?", "ac", "[$1|$2]", "[a|]c"),  # a group that did not take part is empty
        ("(a)", "a", "$10", "a0"),  # $10 with one group is group 1 then "0"
        ("(?<w>o)", "foo", "${w}0", "fo0o0"),
        ("a", "a", "\\$1", "$1"),  # backslash escapes in the replacement
        (".", "a\nb", "x", "x\nx"),  # '.' stops at line terminators
        (".", "a\rb\u2028c", "x", "x\rx\u2028x"),
        ("(?s).", "a\nb", "x", "xxx"),
        ("a$", "a\r\n", "X", "X\r\n"),  # '$' before a final line terminator
        ("a$", "a\n\n", "X", "a\n\n"),
        ("\\s+", "a \t\u000b\fb", "", "ab"),  # Java \s is [ \t\n\x0B\f\r]
        ("\\s", "a\u00a0b", "", "a\u00a0b"),  # not Unicode spaces
        ("\\d", "1٣", "#", "#٣"),  # \d is ASCII
        ("\\w+", "héllo", "X", "XéX"),
        ("(?i)abc", "xABCx", "-", "x-x"),
        ("(?i)é", "É", "-", "É"),  # ASCII-only case folding without (?u)
        ("(?iu)é", "É", "-", "-"),
        ("a(?i)b|c", "ab aB C", "-", "- - -"),  # an inline flag reaches the later alternatives
        ("[^\\r\\n]*:[^\\r\\n]*|\\s", "Key: v\nMIIB x", "", "MIIBx"),
        ("\\Qa.b\\E", "a.b axb", "-", "- axb"),
        ("\\x41\\u0042\\0103\\t", "ABC\t", "-", "-"),
        ("(a)\\1", "aa", "-", "-"),
        ("a{2,}+", "aaaa", "-", "-"),  # possessive quantifier
        ("(?>a+)b", "aab", "-", "-"),
    ],
)
def test_java_regex_replace_all(pattern: str, text: str, replacement: str, expected: str) -> None:
    assert replace_all(pattern, text, replacement) == expected


def test_csr_body_extraction() -> None:
    pem = "junk\n-----BEGIN CERTIFICATE REQUEST-----\nMIIB\r\nAbC=\n-----END CERTIFICATE REQUEST-----\ntail"
    body = replace_all(
        r"(?s)^.*?-----BEGIN CERTIFICATE REQUEST-----(.*?)-----END CERTIFICATE REQUEST-----.*$", pem, "$1"
    )
    assert body == "\nMIIB\r\nAbC=\n"
    assert replace_all(r"[^\r\n]*:[^\r\n]*|\s", body, "") == "MIIBAbC="


@pytest.mark.parametrize("pattern", ["a{", "a{,2}", "(a", "a)", "[a", "\\y", "*a", "\\x4"])
def test_java_syntax_errors(pattern: str) -> None:
    with pytest.raises(QueryError) as err:
        java_regex(pattern)
    assert not isinstance(err.value, UnsupportedQueryError)


@pytest.mark.parametrize("pattern", ["\\bx", "\\p{L}", "(?m)^a", "[a[b]]", "[a&&b]", "(?x)a b", "\\Z"])
def test_java_constructs_without_faithful_translation_are_unsupported(pattern: str) -> None:
    with pytest.raises(UnsupportedQueryError):
        java_regex(pattern)


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        ("$", "group index is missing"),
        ("$2", "No group 2"),
        ("${x}", "No group with name {x}"),
        ("\\", "escaped"),
    ],
)
def test_bad_replacement_fails_only_when_a_match_happens(replacement: str, message: str) -> None:
    compiled = java_regex("(a)")
    expand = java_replacement(compiled, replacement)
    assert compiled.compiled.sub(expand, "bbb") == "bbb"
    with pytest.raises(QueryError, match=re.escape(message)):
        compiled.compiled.sub(expand, "a")


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*", "", True),
        ("a*c", "abbc", True),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
        ("a\\?", "a?", True),
        ("a\\\\", "a\\", True),
        ("a.c", "abc", False),  # regex characters are literal
        ("*x*", "line1\nx", True),
    ],
)
def test_like_wildcards(pattern: str, text: str, expected: bool) -> None:
    assert (like_to_python(pattern).fullmatch(text) is not None) is expected


@pytest.mark.parametrize("pattern", ["a\\b", "trailing\\"])
def test_like_escape_must_precede_a_wildcard(pattern: str) -> None:
    with pytest.raises(QueryError, match="escape character is not followed by special wildcard char"):
        like_to_python(pattern)

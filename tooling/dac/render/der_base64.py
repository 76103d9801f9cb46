"""Exact RLIKE patterns for a subject attribute inside a base64 PEM body.

A CSR's subject attribute ``O=system:masters`` is a fixed run of DER bytes::

    30 LL  06 03 55 04 0A  <string tag> <length> <value bytes>

Those bytes can start at any byte offset of the DER, so in the base64 body
they appear in one of three alignments. For each alignment we compute, char by
char, the set of base64 characters consistent with the known bits, and anchor
the pattern at a 4-character group boundary. The result matches exactly the
bodies whose DER contains the attribute: no partial-character guesswork
(Sigma's ``base64offset`` drops those characters), and no decoding to bytes:
ES|QL's FROM_BASE64 returns null for bytes that are not UTF-8, which a DER
request never is (Elasticsearch FromBase64, since 8.19/9.4).

The attribute's DER, in each string type Go reads into a subject, comes from
``dac.asn1``, the same encoder the CSR generator signs with.
"""

from __future__ import annotations

import base64
import string
from functools import cache

from dac.asn1 import STRING_TYPES, attribute

BASE64_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
ANY_BASE64 = "[A-Za-z0-9+/]"

def aligned_pattern(needles: list[bytes]) -> str:
    """A Lucene/Java-compatible regex matching any of ``needles`` at any alignment of base64 text.

    The pattern starts at a group boundary and is meant to be followed by ``.*``. One shared
    group prefix keeps the automaton Elasticsearch builds from it small.
    """
    alternatives = [_alignment(needle, offset) for needle in needles for offset in range(3)]
    return f"({ANY_BASE64}{{4}})*({'|'.join(alternatives)})"


def _alignment(needle: bytes, offset: int) -> str:
    """One alignment: ``offset`` unknown bytes from a group boundary, then the needle.

    The stream is one integer; ``known`` marks the needle's bits. Each base64 character is
    the class of characters agreeing with the known bits of its 6-bit slice.
    """
    bits = 8 * (offset + len(needle))
    width = -(-bits // 6) * 6  # whole characters
    value = int.from_bytes(needle, "big") << (width - bits)
    known = ((1 << 8 * len(needle)) - 1) << (width - bits)

    def char(index: int) -> str:
        shift = width - 6 * (index + 1)
        return _class_for((known >> shift) & 63, (value >> shift) & 63)

    # The characters wholly inside the needle are its base64 text at this offset; only the
    # first (bits of the unknown bytes before) and the last (bits past the end) are classes.
    first = -(-8 * offset // 6)  # the wholly known characters are [first, last)
    last = max(first, bits // 6)
    exact = base64.b64encode(bytes(offset) + needle).decode("ascii")[first:last].replace("+", "\\+")
    chars = [*map(char, range(first)), *([exact] if exact else []), *map(char, range(last, width // 6))]
    while chars and chars[-1] == ANY_BASE64:  # trailing unknowns are covered by the ".*" after
        chars.pop()
    return "".join(chars)


@cache
def _class_for(mask: int, value: int) -> str:
    """The base64 characters whose 6 bits agree with ``value`` wherever ``mask`` is set."""
    if mask == 0:
        return ANY_BASE64
    members = "".join(ch for n, ch in enumerate(BASE64_ALPHABET) if n & mask == value)
    escaped = members.replace("+", "\\+")
    return escaped if len(members) == 1 else f"[{escaped}]"


@cache
def subject_attribute_pattern(attribute_name: str, value: str) -> str:
    """The attribute in every string type Go accepts, at every alignment."""
    needles = []
    for string_type in STRING_TYPES:
        try:
            needles.append(attribute(attribute_name, value, string_type))
        except ValueError:
            continue  # e.g. a non-ASCII value cannot be a PrintableString
    return aligned_pattern(needles)

"""The few DER encodings CSR subjects need, shared by the CSR generator and the rule patterns.

String types are those Go's ``encoding/asn1`` decodes into a Go string when it fills
``pkix.Name`` (src/encoding/asn1/asn1.go): a subject value in any other type grants nothing.
"""

from __future__ import annotations

STRING_TYPES = ("utf8", "printable", "ia5", "t61", "bmp")
ATTRIBUTE_OIDS = {
    "C": "2.5.4.6",
    "ST": "2.5.4.8",
    "L": "2.5.4.7",
    "O": "2.5.4.10",
    "OU": "2.5.4.11",
    "CN": "2.5.4.3",
}

# ASN.1 universal tags of the string types Go's encoding/asn1 decodes into a string.
_STRING_TAGS = {"utf8": 0x0C, "printable": 0x13, "t61": 0x14, "ia5": 0x16, "bmp": 0x1E}
# X.680 PrintableString alphabet (Go additionally tolerates '*' and '&' when reading).
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(sorted(items)))  # DER orders SET OF members by encoding


def oid(dotted: str) -> bytes:
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def encode_string(value: str, string_type: str) -> bytes:
    """The DER of ``value`` as ``string_type``; ValueError when that type cannot carry it."""
    if string_type not in _STRING_TAGS:
        raise ValueError(f"unknown string type {string_type!r} (expected one of {', '.join(STRING_TYPES)})")
    if string_type == "utf8":
        content = value.encode("utf-8")
    elif string_type == "printable":
        bad = sorted(set(value) - _PRINTABLE)
        if bad:
            raise ValueError(f"{value!r} has characters a PrintableString cannot hold: {''.join(bad)!r}")
        content = value.encode("ascii")
    elif string_type == "ia5":
        if not value.isascii():
            raise ValueError(f"{value!r} is not ASCII, which an IA5String requires")
        content = value.encode("ascii")
    elif string_type == "t61":
        try:
            content = value.encode("latin-1")  # what Go's parseT61String decodes
        except UnicodeEncodeError:
            raise ValueError(f"{value!r} is not Latin-1, which a T61String carries here") from None
    else:
        if any(ord(ch) > 0xFFFF or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise ValueError(f"{value!r} has characters outside the Basic Multilingual Plane")
        content = value.encode("utf-16-be")
    return tlv(_STRING_TAGS[string_type], content)


def attribute(name: str, value: str, string_type: str) -> bytes:
    """One AttributeTypeAndValue, e.g. ``O=system:masters`` as a PrintableString."""
    return seq(oid(ATTRIBUTE_OIDS[name]), encode_string(value, string_type))

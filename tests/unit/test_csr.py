"""CSR construction and PEM layouts (Go's acceptance is checked in test_csr_go_conformance)."""

from __future__ import annotations

import base64
import random
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from dac.asn1 import STRING_TYPES, encode_string
from dac.events.csr import (
    ENCODING_FAMILIES,
    KEY_TYPES,
    Attribute,
    PemStyle,
    Subject,
    make_csr,
    pem_encode,
    private_key,
)

ASN1_TYPES = {"utf8": _ASN1Type.UTF8String, "printable": _ASN1Type.PrintableString,
              "ia5": _ASN1Type.IA5String, "t61": _ASN1Type.T61String, "bmp": _ASN1Type.BMPString}


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("string_type", STRING_TYPES)
def test_csr_is_signed_and_carries_the_subject_in_order_with_the_string_type(key_type, string_type):
    subject = Subject.of(Attribute("O", "system:masters", string_type), Attribute("CN", "x", string_type),
                         Attribute("O", "ops", string_type))
    parsed = x509.load_der_x509_csr(make_csr(subject, key_type).der)
    assert parsed.is_signature_valid
    attributes = list(parsed.subject)
    assert [(a.oid, a.value) for a in attributes] == [
        (NameOID.ORGANIZATION_NAME, "system:masters"), (NameOID.COMMON_NAME, "x"),
        (NameOID.ORGANIZATION_NAME, "ops")]
    assert {a._type for a in attributes} == {ASN1_TYPES[string_type]}


def test_multi_valued_rdn_and_subject_alt_names():
    subject = Subject(((Attribute("O", "system:masters"), Attribute("CN", "deploy")),))
    csr = make_csr(subject, "ed25519", dns_names=("a.example", "system:masters"))
    parsed = x509.load_der_x509_csr(csr.der)
    assert [len(rdn) for rdn in parsed.subject.rdns] == [2]
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example", "system:masters"]


def test_identity_follows_go_last_cn_and_every_o():
    subject = Subject.of(Attribute("CN", "system:kube-controller-manager"), Attribute("O", "a"),
                         Attribute("OU", "system:masters"), Attribute("CN", "alice"), Attribute("O", "b"))
    assert subject.user == "alice"
    assert subject.groups == ["a", "b"]
    assert Subject.of(Attribute("O", "a")).user == ""


@pytest.mark.parametrize(("value", "string_type", "message"), [
    ("system_masters", "printable", "PrintableString"),
    ("systèm", "ia5", "ASCII"),
    ("система", "t61", "Latin-1"),
    ("\U0001F600", "bmp", "Basic Multilingual Plane"),
    ("x", "visible", "unknown string type"),
])
def test_values_a_string_type_cannot_hold_are_refused(value, string_type, message):
    with pytest.raises(ValueError, match=message):
        encode_string(value, string_type)


def test_string_bytes_are_what_go_decodes():
    assert encode_string("mä", "t61") == b"\x14\x02m\xe4"  # Latin-1, as Go's parseT61String reads it
    assert encode_string("mä", "bmp") == b"\x1e\x04\x00m\x00\xe4"  # UCS-2 big-endian
    assert encode_string("mä", "utf8") == b"\x0c\x03m\xc3\xa4"


def test_default_layout_is_byte_identical_to_cryptography_pem():
    csr = make_csr(Subject.simple("x", ("system:masters",)), "rsa-2048")
    expected = x509.load_der_x509_csr(csr.der).public_bytes(serialization.Encoding.PEM).decode()
    assert csr.pem() == expected


def _body(pem: str) -> str:
    """The base64 between the boundary lines, with headers and whitespace removed."""
    inner = pem.split("-----BEGIN CERTIFICATE REQUEST-----", 1)[1].split("-----END", 1)[0]
    lines = [line for line in re.split(r"\r?\n", inner) if ":" not in line]
    return re.sub(r"[ \t\r\n]", "", "".join(lines))


@pytest.mark.parametrize("style", [
    PemStyle(line_width=0),
    PemStyle(line_width=1),
    PemStyle(line_width=76, newline="\r\n"),
    PemStyle(indent="\t", gap=" ", trailing=" \t"),
    PemStyle(headers=(("Proc-Type", "4,ENCRYPTED"), ("DEK-Info", "AES-128-CBC,00")),
             before="note", after="bye"),
])
def test_every_layout_keeps_the_same_base64_body(style):
    csr = make_csr(Subject.simple("x"), "ec-p256")
    pem = pem_encode(csr.der, style)
    assert base64.b64decode(_body(pem)) == csr.der
    assert pem.count(style.newline) == pem.count("\n")  # one newline style throughout
    if style.line_width == 0:
        assert len(pem.splitlines()) == 3 + len(style.headers) + (1 if style.headers else 0)


def test_request_is_base64_of_the_pem_bytes():
    csr = make_csr(Subject.simple("x"), "ed25519")
    style = PemStyle(newline="\r\n", line_width=17)
    assert base64.b64decode(csr.request(style)).decode() == csr.pem(style)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"newline": "\r"}, "newline"),
    ({"line_width": -1}, "line width"),
    ({"indent": "x"}, "indent"),
    ({"headers": (("a:b", "c"),)}, "header"),
    ({"before": "-----BEGIN X-----"}, "before"),
])
def test_layouts_go_would_not_read_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PemStyle(**kwargs)


def test_keys_are_cached_and_ec_ed25519_are_derived_from_the_seed():
    assert private_key("rsa-2048", 0) is private_key("rsa-2048", 0)
    subject = Subject.simple("x")
    raw = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    for key_type in ("ec-p256", "ec-p384", "ed25519"):
        fresh = private_key.__wrapped__(key_type, 3)  # bypass the cache: derive again
        assert fresh.private_bytes(*raw) == private_key(key_type, 3).private_bytes(*raw)
        first = make_csr(subject, key_type, key_seed=3).der
        assert make_csr(subject, key_type, key_seed=3).der == first  # deterministic signatures too
        assert make_csr(subject, key_type, key_seed=4).der != first
    with pytest.raises(ValueError, match="unknown key type"):
        private_key("rsa-1024")


def test_unknown_attribute_is_refused():
    with pytest.raises(ValueError, match="unknown subject attribute"):
        Attribute("EMAIL", "a@b")


def test_every_family_builds_a_valid_style():
    rng = random.Random(0)
    for family, build in ENCODING_FAMILIES.items():
        for _ in range(10):
            assert isinstance(build(rng), PemStyle), family

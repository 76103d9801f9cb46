"""Real PKCS#10 certificate signing requests, in every PEM form the Kubernetes API server accepts.

The API server reads ``spec.request`` with Go's ``encoding/pem`` ``Decode`` (block type must be
``CERTIFICATE REQUEST``), ``crypto/x509.ParseCertificateRequest`` and ``CheckSignature``
(kubernetes ``pkg/apis/certificates/helpers.go`` ``ParseCSR``, ``validation/validation.go``
``validateCSR``). A detection has to see the same subject through every such form, so the
generator controls the exact bytes:

* the DER is built here and signed with a ``cryptography`` key, because ``cryptography`` writes
  T61String values as UTF-8 (Go reads T61String as Latin-1, ``encoding/asn1/asn1.go``
  ``parseT61String``) and cannot write several attributes into one RDN in a chosen order;
* ``pem_encode`` writes every layout ``pem.Decode`` accepts (``src/encoding/pem/pem.go``): any
  line width, LF or CRLF, spaces and tabs inside the body, ``Key: Value`` headers, text before
  and after the block.

Kubernetes maps the subject to an identity the way Go fills ``pkix.Name``
(``crypto/x509/pkix/pkix.go`` ``FillFromRDNSequence``): the user is the *last* CommonName, the
groups are *all* Organization values. ``Subject.user`` and ``Subject.groups`` follow that.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from dac.asn1 import ATTRIBUTE_OIDS, attribute, encode_string, oid, seq, set_of, tlv

KEY_TYPES = ("rsa-2048", "rsa-4096", "ec-p256", "ec-p384", "ed25519")
PEM_TYPE = "CERTIFICATE REQUEST"

_OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
_OID_SUBJECT_ALT_NAME = "2.5.29.17"


# --- subject ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attribute:
    """One subject attribute: short name (CN, O, OU, C, ST, L), value, ASN.1 string type."""

    name: str
    value: str
    string_type: str = "utf8"

    def __post_init__(self) -> None:
        if self.name not in ATTRIBUTE_OIDS:
            raise ValueError(f"unknown subject attribute {self.name!r} "
                             f"(expected one of {', '.join(ATTRIBUTE_OIDS)})")
        encode_string(self.value, self.string_type)

    def der(self) -> bytes:
        return attribute(self.name, self.value, self.string_type)


@dataclass(frozen=True)
class Subject:
    """An X.509 subject as a sequence of RDNs, each a set of one or more attributes, in order."""

    rdns: tuple[tuple[Attribute, ...], ...]

    @classmethod
    def of(cls, *attributes: Attribute) -> Subject:
        """One RDN per attribute, in the given order (the usual shape)."""
        return cls(tuple((attribute,) for attribute in attributes))

    @classmethod
    def simple(cls, cn: str | None = None, o: tuple[str, ...] = (), string_type: str = "utf8") -> Subject:
        """``O=…, …, CN=…`` in the order openssl and Go write them."""
        attributes = [Attribute("O", value, string_type) for value in o]
        if cn is not None:
            attributes.append(Attribute("CN", cn, string_type))
        return cls.of(*attributes)

    def values(self, name: str) -> list[str]:
        return [a.value for rdn in self.rdns for a in rdn if a.name == name]

    @property
    def user(self) -> str:
        """The Kubernetes user name this subject authenticates as: the last CN (Go keeps the last)."""
        names = self.values("CN")
        return names[-1] if names else ""

    @property
    def groups(self) -> list[str]:
        """The Kubernetes groups this subject authenticates with: every O value."""
        return self.values("O")

    def der(self) -> bytes:
        return seq(*(set_of(*(a.der() for a in rdn)) for rdn in self.rdns))

    def __str__(self) -> str:
        return ", ".join("+".join(f"{a.name}={a.value}" for a in rdn) for rdn in self.rdns)


# --- keys and signing ------------------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@functools.cache
def private_key(key_type: str, seed: int = 0) -> PrivateKey:
    """A key per (type, seed), made once per process.

    EC and Ed25519 keys are derived from the seed, so they are the same in every run; RSA keys
    come from OpenSSL's generator and differ between processes (RSA-4096 takes about a second).
    """
    digest = hashlib.sha512(f"{key_type}/{seed}".encode()).digest()
    if key_type in ("rsa-2048", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    if key_type == "ec-p256":  # any scalar below 2**255 is below the P-256 group order
        return ec.derive_private_key(int.from_bytes(digest[:32]) % 2**255 + 1, ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.derive_private_key(int.from_bytes(digest[:48]) % 2**383 + 1, ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(digest[:32])
    raise ValueError(f"unknown key type {key_type!r} (expected one of {', '.join(KEY_TYPES)})")


def _signature_algorithm(key: PrivateKey) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return seq(oid("1.2.840.113549.1.1.11"), b"\x05\x00")  # sha256WithRSAEncryption, NULL
    if isinstance(key, ec.EllipticCurvePrivateKey):
        p384 = isinstance(key.curve, ec.SECP384R1)
        return seq(oid("1.2.840.10045.4.3.3" if p384 else "1.2.840.10045.4.3.2"))  # ecdsa-with-SHA384/256
    return seq(oid("1.3.101.112"))  # Ed25519


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if isinstance(key.curve, ec.SECP384R1) else hashes.SHA256()
        return key.sign(data, ec.ECDSA(digest, deterministic_signing=True))  # RFC 6979
    return key.sign(data)


def _san_attribute(dns_names: tuple[str, ...]) -> bytes:
    general_names = seq(*(tlv(0x82, name.encode("ascii")) for name in dns_names))  # [2] dNSName
    extension = seq(oid(_OID_SUBJECT_ALT_NAME), tlv(0x04, general_names))
    return seq(oid(_OID_EXTENSION_REQUEST), set_of(seq(extension)))


@dataclass(frozen=True)
class Csr:
    """A signed CSR and what it was made from."""

    der: bytes
    subject: Subject
    key_type: str
    dns_names: tuple[str, ...] = ()

    def pem(self, style: PemStyle | None = None) -> str:
        return pem_encode(self.der, style or PemStyle())

    def request(self, style: PemStyle | None = None) -> str:
        """The ``spec.request`` value: base64 of the PEM bytes, as the API server re-encodes it."""
        return base64.b64encode(self.pem(style).encode("latin-1")).decode("ascii")


def make_csr(subject: Subject, key_type: str = "ec-p256", *, key_seed: int = 0,
             dns_names: tuple[str, ...] = ()) -> Csr:
    """Build and sign a PKCS#10 request (RFC 2986) for ``subject`` with a cached key."""
    key = private_key(key_type, key_seed)
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    attributes = _san_attribute(dns_names) if dns_names else b""
    info = seq(b"\x02\x01\x00", subject.der(), spki, tlv(0xA0, attributes))
    signature = tlv(0x03, b"\x00" + _sign(key, info))
    return Csr(seq(info, _signature_algorithm(key), signature), subject, key_type, dns_names)


# --- PEM -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PemStyle:
    """How to lay out a PEM block; every combination is one Go's ``pem.Decode`` accepts."""

    line_width: int = 64  # base64 characters per body line; 0 puts the whole body on one line
    newline: str = "\n"  # "\n" or "\r\n"
    indent: str = ""  # spaces/tabs before every body line
    gap: str = ""  # spaces/tabs after every 4 base64 characters inside a line
    trailing: str = ""  # spaces/tabs at the end of every line (Go trims them)
    headers: tuple[tuple[str, str], ...] = ()  # "Key: Value" lines after BEGIN, then a blank line
    before: str = ""  # text on its own lines before the BEGIN line
    after: str = ""  # text on its own lines after the END line

    def __post_init__(self) -> None:
        if self.newline not in ("\n", "\r\n"):
            raise ValueError(f"newline must be LF or CRLF, not {self.newline!r}")
        if self.line_width < 0:
            raise ValueError(f"line width must be 0 or more, not {self.line_width}")
        for name in ("indent", "gap", "trailing"):
            if set(getattr(self, name)) - {" ", "\t"}:
                raise ValueError(f"{name} may hold only spaces and tabs")
        for key, value in self.headers:
            if not key.strip() or ":" in key or "\n" in key + value or "\r" in key + value:
                raise ValueError(f"header {key!r} must be a non-empty name without ':' or line breaks")
        for name in ("before", "after"):
            if "-----" in getattr(self, name):
                raise ValueError(f"{name} text must not contain PEM boundary dashes")


def pem_encode(der: bytes, style: PemStyle) -> str:
    """Wrap DER in a ``CERTIFICATE REQUEST`` PEM block laid out as ``style`` says."""
    body = base64.b64encode(der).decode("ascii")
    width = style.line_width or len(body)
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    if style.gap:
        lines = [style.gap.join(line[i:i + 4] for i in range(0, len(line), 4)) for line in lines]
    out: list[str] = []
    if style.before:
        out.extend(style.before.splitlines())
    out.append(f"-----BEGIN {PEM_TYPE}-----")
    if style.headers:
        out.extend(f"{key}: {value}" for key, value in style.headers)
        out.append("")
    out.extend(style.indent + line for line in lines)
    out.append(f"-----END {PEM_TYPE}-----")
    if style.after:
        out.extend(style.after.splitlines())
    return "".join(line + style.trailing + style.newline for line in out)


# --- encoding families -----------------------------------------------------------------------

# Each family draws a concrete layout from a random source; the efficacy report groups by family.
ENCODING_FAMILIES: dict[str, Callable[[Random], PemStyle]] = {
    "standard-64": lambda rng: PemStyle(),
    "single-line": lambda rng: PemStyle(line_width=0),
    "crlf": lambda rng: PemStyle(line_width=rng.choice((64, 76, 0)), newline="\r\n"),
    "odd-width": lambda rng: PemStyle(line_width=rng.choice((1, 3, 17, 63, 65, 76, 100, 129))),
    "spaces-tabs": lambda rng: PemStyle(
        line_width=rng.choice((64, 48, 0)),
        indent=rng.choice(("  ", "\t", " \t")),
        gap=rng.choice(("", " ", "\t")),
        trailing=rng.choice(("", " ", "\t ")),
    ),
    "pem-headers": lambda rng: PemStyle(
        headers=rng.choice(((("Proc-Type", "4,ENCRYPTED"), ("DEK-Info", "AES-128-CBC,00FF")),
                            (("Comment", "requested by ops"),),
                            (("X-Requester", "system:masters"),))),
    ),
    "surrounding-text": lambda rng: PemStyle(
        before=rng.choice(("Certificate request for the build bot", "subject=/O=system:masters/CN=x")),
        after=rng.choice(("-- end of request", "Generated by openssl req")),
        newline=rng.choice(("\n", "\r\n")),
    ),
}


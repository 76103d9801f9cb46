"""The generated CSRs against Go itself: what the Kubernetes API server accepts and reads.

tests/go/csrcheck/main.go runs kubernetes' ParseCSR path (encoding/pem Decode, block type
"CERTIFICATE REQUEST", crypto/x509 ParseCertificateRequest, CheckSignature) on each spec.request.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from dac.asn1 import STRING_TYPES
from dac.events.csr import ENCODING_FAMILIES, KEY_TYPES, Attribute, PemStyle, Subject, make_csr
from dac.events.generate import KCM, MASTERS, efficacy_corpus

CHECKER = Path(__file__).resolve().parents[1] / "go" / "csrcheck" / "main.go"


@pytest.fixture(scope="session")
def csrcheck(tmp_path_factory):
    """Build the Go checker once; return a function that checks many spec.request values in one run."""
    go = shutil.which("go")
    assert go, "the Go toolchain is required for the CSR conformance tests (it is installed on CI)"
    binary = tmp_path_factory.mktemp("csrcheck") / "csrcheck"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    subprocess.run([go, "build", "-o", str(binary), str(CHECKER)], check=True, env=env, capture_output=True)

    def check(requests: list[str]) -> list[dict]:
        lines = "".join(json.dumps({"id": str(i), "request": r}) + "\n" for i, r in enumerate(requests))
        result = subprocess.run([str(binary)], input=lines, text=True, capture_output=True, check=True)
        return [json.loads(line) for line in result.stdout.splitlines()]

    return check


def test_every_family_string_type_and_key_type_is_accepted_with_the_intended_subject(csrcheck):
    rng = random.Random(7)
    cases = []
    for key_type in KEY_TYPES:
        for string_type in STRING_TYPES:
            subject = Subject.of(*(Attribute(name, value, string_type) for name, value in (
                ("O", "developers"), ("O", MASTERS), ("OU", "ops"), ("CN", KCM))))
            csr = make_csr(subject, key_type)
            for family, build in ENCODING_FAMILIES.items():
                cases.append((f"{key_type}/{string_type}/{family}", csr.request(build(rng))))
    results = csrcheck([request for _, request in cases])
    assert len(results) == len(cases) == 175
    for (case, _), result in zip(cases, results, strict=True):
        assert result["ok"], (case, result.get("error"))
        assert (result["cn"], result["o"], result["ou"]) == (KCM, ["developers", MASTERS], ["ops"]), case


@pytest.mark.parametrize("style", [
    PemStyle(line_width=0, newline="\r\n", indent="\t", gap=" \t", trailing="\t"),
    PemStyle(line_width=1, headers=(("Comment", "x"),)),
    PemStyle(before="line one\nline two", after="trailer\n\nmore", newline="\r\n"),
])
def test_unusual_text_and_multi_valued_rdns_and_sans(csrcheck, style):
    subject = Subject((
        (Attribute("O", "gruppe-ä", "t61"), Attribute("CN", "first", "printable")),
        (Attribute("O", "组", "utf8"),),
        (Attribute("CN", "zuletzt-ü", "bmp"),),
    ))
    csr = make_csr(subject, "ec-p384", dns_names=("system:masters", "n.example"))
    (result,) = csrcheck([csr.request(style)])
    assert result["ok"], result
    assert result["cn"] == subject.user == "zuletzt-ü"
    assert result["o"] == subject.groups == ["gruppe-ä", "组"]
    assert result["dns"] == ["system:masters", "n.example"]


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode("latin-1") if isinstance(text, str) else text).decode()


def test_deliberately_broken_forms_are_rejected(csrcheck):
    csr = make_csr(Subject.simple("system-user", ("system:masters",), "printable"), "ed25519")
    pem = csr.pem()
    body = pem.splitlines()[1:-1]
    tampered_signature = bytearray(csr.der)
    tampered_signature[-1] ^= 0x01
    bad_printable = csr.der.replace(b"system-user", b"system_user")  # '_' is no PrintableString character
    broken = {
        "new-certificate-request-label": pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"),
        "certificate-label": pem.replace("CERTIFICATE REQUEST", "CERTIFICATE"),
        "indented-end-line": pem.replace("-----END", " -----END"),
        "begin-after-text-on-same-line": "note: " + pem,
        "text-after-end-on-same-line": pem.replace("REQUEST-----\n", "REQUEST----- trailer\n").replace(
            "BEGIN CERTIFICATE REQUEST----- trailer", "BEGIN CERTIFICATE REQUEST-----"),
        "missing-end-line": "\n".join(pem.splitlines()[:-1]) + "\n",
        "non-base64-character": pem.replace(body[1][:4], body[1][:3] + "*", 1),
        "truncated-base64": "\n".join([pem.splitlines()[0], "".join(body)[:-1], pem.splitlines()[-1]]) + "\n",
        "bad-signature": _b64(tampered_signature).join(("-----BEGIN CERTIFICATE REQUEST-----\n",
                                                        "\n-----END CERTIFICATE REQUEST-----\n")),
        "invalid-printable-string": _b64(bad_printable).join(("-----BEGIN CERTIFICATE REQUEST-----\n",
                                                              "\n-----END CERTIFICATE REQUEST-----\n")),
    }
    results = dict(zip(broken, csrcheck([_b64(text) for text in broken.values()]), strict=True))
    for name, result in results.items():
        assert not result["ok"], name
    assert "PrintableString" in results["invalid-printable-string"]["error"]
    assert "verification" in results["bad-signature"]["error"]
    assert "CERTIFICATE REQUEST" in results["new-certificate-request-label"]["error"]
    # the untouched PEM passes, so every rejection above is due to its one change
    assert csrcheck([csr.request()])[0]["ok"]


def test_efficacy_labels_agree_with_go(csrcheck):
    corpus = efficacy_corpus(seed=5, malicious=175, benign=175)
    requests = [item.events[-1]["requestObject"]["spec"]["request"] for item in corpus]
    for item, result in zip(corpus, csrcheck(requests), strict=True):
        assert result["ok"], (item.shape, item.encoding_family, result.get("error"))
        assert item.asks_masters == (MASTERS in (result["o"] or [])), item.shape
        # any CN naming the controller manager is labelled an attempt (see dac.events.generate)
        assert item.asks_kube_controller_manager == (KCM in result["cns"]), item.shape

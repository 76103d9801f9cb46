"""``dac efficacy``: measured recall and false positives of the CSR subject rules.

A seeded corpus of real CSR create requests (every PEM layout family, subject
string type and key type; attacks and look-alikes) runs through this
repository's rules, on the local engine, and through the two approaches
published elsewhere, so the README can show with numbers why the rules decode
the request the way the API server does:

- ``base64 fragments``: Sigma's ``base64offset`` of the identity (and the
  hints in Elastic's rule notes), matched inside ``spec.request``;
- ``strip-and-decode``: decode ``spec.request``, strip the BEGIN/END lines and
  line breaks, decode the body strictly, and search the DER for the identity.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from dac.compile import CompiledRule
from dac.documents import SourceDocument, values_at
from dac.engine.local import LocalEngine
from dac.events.envelopes import wrap
from dac.events.formats import convert
from dac.events.generate import LabeledRequest, efficacy_corpus
from dac.events.reader import document_id, index_name

SUBJECT_RULE_TEMPLATE = "queries/csr_subject_identity.esql.j2"
# What each identity's ground truth is called in the corpus labels.
LABELS = {
    "system:masters": "asks_masters",
    "system:kube-controller-manager": "asks_kube_controller_manager",
}
PEM_MARKERS = ("-----BEGIN CERTIFICATE REQUEST-----", "-----END CERTIFICATE REQUEST-----")

Detector = Callable[[LabeledRequest], bool]


@dataclass
class Score:
    """Confusion counts, overall and per breakdown key (``family:…``, ``string:…``)."""

    true_positives: int = 0
    false_negatives: int = 0
    false_positives: int = 0
    true_negatives: int = 0
    by: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))  # hit, total, fp

    def add(self, request: LabeledRequest, truth: bool, detected: bool) -> None:
        if truth:
            self.true_positives += detected
            self.false_negatives += not detected
        else:
            self.false_positives += detected
            self.true_negatives += not detected
        for key in (
            f"family:{request.encoding_family}",
            f"string:{request.string_type}",
            f"key:{request.key_type}",
        ):
            cell = self.by[key]
            if truth:
                cell[0] += detected
                cell[1] += 1
            else:
                cell[2] += detected

    @property
    def recall(self) -> float:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else 1.0


@dataclass
class Report:
    malicious: int
    benign: int
    scores: dict[tuple[str, str], Score]  # (identity, approach) → score

    def as_dict(self) -> dict[str, Any]:
        return {
            "corpus": {"malicious": self.malicious, "benign": self.benign},
            "results": [
                {
                    "identity": identity,
                    "approach": approach,
                    "recall": round(s.recall, 4),
                    "true_positives": s.true_positives,
                    "false_negatives": s.false_negatives,
                    "false_positives": s.false_positives,
                    "breakdown": {
                        k: {"detected": v[0], "malicious": v[1], "false_positives": v[2]}
                        for k, v in sorted(s.by.items())
                    },
                }
                for (identity, approach), s in self.scores.items()
            ],
        }


def subject_rules(rules: list[CompiledRule]) -> dict[str, CompiledRule]:
    """The rules built from the shared CSR subject template, by the identity they look for."""
    found = {}
    for rule in rules:
        query = rule.rule.data["query"]
        if isinstance(query, dict) and query["template"] == SUBJECT_RULE_TEMPLATE:
            found[query["vars"]["value"]] = rule
    return found


def measure(rules: list[CompiledRule], seed: int, malicious: int, benign: int,
            log_format: str = "native") -> Report:
    """``log_format``: the envelope the requests' audit events arrive in (dac.events.envelopes)."""
    corpus = efficacy_corpus(seed, malicious, benign)
    scores: dict[tuple[str, str], Score] = {}
    for identity, rule in sorted(subject_rules(rules).items()):
        label = LABELS[identity]
        detectors: dict[str, Detector] = {
            "this repository's rule": _rule_detector(rule, corpus, log_format),
            "base64 fragments": _fragments_detector(identity),
            "strip-and-decode": _strip_and_decode_detector(identity),
        }
        for approach, detect in detectors.items():
            score = scores.setdefault((identity, approach), Score())
            for request in corpus:
                score.add(request, getattr(request, label), detect(request))
    return Report(malicious, benign, scores)


def _rule_detector(rule: CompiledRule, corpus: list[LabeledRequest], log_format: str = "native") -> Detector:
    """Run the rule once over the whole corpus on the local engine; detected = any alert."""
    owner: dict[str, int] = {}
    documents = []
    for number, request in enumerate(corpus):
        for record in wrap(request.events, log_format):
            content = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
            for event_content, source in convert(record, content, log_format):
                document = SourceDocument(index_name(source), document_id(event_content), source)
                owner[document.id] = number
                documents.append(document)
    # One run over the whole corpus: lift max_signals, the per-execution cap, to see every hit.
    executable = {**rule.with_version(1), "max_signals": len(documents)}
    outcome = LocalEngine().run([executable], documents)[0]
    hit = {owner[a["kibana.alert.ancestors"][0]["id"]] for a in outcome.alerts}
    index = {id(request): number for number, request in enumerate(corpus)}
    return lambda request: index[id(request)] in hit


def _spec_requests(request: LabeledRequest) -> list[str]:
    return [str(v) for event in request.events for v in values_at(event, "requestObject.spec.request")]


def base64_fragments(value: str) -> list[str]:
    """Sigma's ``base64offset``: the value's base64 at the three byte offsets, edges trimmed."""
    raw = value.encode("utf-8")
    starts, ends = (0, 2, 3), (None, -3, -2)
    return [base64.b64encode(b" " * i + raw).decode()[starts[i] : ends[(len(raw) + i) % 3]] for i in range(3)]


def _fragments_detector(identity: str) -> Detector:
    fragments = base64_fragments(identity)
    return lambda request: any(f in spec for spec in _spec_requests(request) for f in fragments)


def _strip_and_decode_detector(identity: str) -> Detector:
    needle = identity.encode("utf-8")

    def detect(request: LabeledRequest) -> bool:
        for spec in _spec_requests(request):
            try:
                pem = base64.b64decode(spec, validate=True).decode("utf-8", "replace")
                body = pem
                for marker in PEM_MARKERS:
                    body = body.replace(marker, "")
                body = body.replace("\r\n", "").replace("\n", "")
                if needle in base64.b64decode(body, validate=True):
                    return True
            except (binascii.Error, ValueError):
                continue
        return False

    return detect

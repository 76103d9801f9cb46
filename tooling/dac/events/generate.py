"""Seeded data sets of raw audit events: ``dac generate`` scenarios and the efficacy corpus.

CSR signing is the slow part, so each run builds a small pool of CSRs once and varies only the
PEM layout, the requester and the outcome per request; keys are shared by all runs of a process
(the seed drives every choice, not the keys). Which attribute grants what follows
Kubernetes' x509 authenticator: every O is a group; OU, C, SANs and text around the PEM block
grant nothing. The user is the last CN in Go, but OpenSSL, Java and most tooling show the first:
a subject that names the controller manager in any CN is labelled an attempt on that identity,
since it is forged to read as one (the signer would issue it for the last CN only).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from random import Random
from typing import Any

from dac.asn1 import STRING_TYPES
from dac.errors import DacError
from dac.events import audit
from dac.events.audit import ApiRequest, CsrObject, Requester
from dac.events.csr import ENCODING_FAMILIES, KEY_TYPES, Attribute, PemStyle, Subject, make_csr
from dac.events.specs import BASE_TIME

SCENARIOS = {
    "mixed": "realistic cluster traffic (leases, pods, nodes, events…) with 1% CSR-related requests, "
             "a few of them attacks; for benchmarks",
    "csr-attacks": "CSRs asking for system:masters or system:kube-controller-manager in every PEM layout, "
                   "string type and key type, with approvals, signing and refused attempts",
    "csr-benign": "kubelet bootstrap and renewal, controller approvals, signing, user certificates and "
                  "look-alike subjects that grant nothing",
}

MASTERS = "system:masters"
KCM = "system:kube-controller-manager"
CUSTOM_SIGNER = "example.com/internal-ca"

Shape = tuple[tuple[tuple[str, str], ...], ...]  # RDNs of (attribute, value)


def _rdns(*pairs: tuple[str, str]) -> Shape:
    return tuple((pair,) for pair in pairs)


# Subjects that ask for a privileged identity.
MALICIOUS_SHAPES: dict[str, Shape] = {
    "o-masters": _rdns(("O", MASTERS), ("CN", "ops-admin")),
    "cn-kcm": _rdns(("CN", KCM)),
    "o-masters-cn-kcm": _rdns(("O", MASTERS), ("CN", KCM)),
    "o-masters-among-others": _rdns(("O", "developers"), ("O", MASTERS), ("O", "ops"), ("CN", "ci-bot")),
    "o-after-cn": _rdns(("CN", "jenkins"), ("O", MASTERS)),
    "multi-valued-rdn": ((("O", MASTERS), ("CN", "deploy")),),
    "full-dn": _rdns(("C", "US"), ("ST", "CA"), ("L", "SF"), ("O", MASTERS), ("OU", "platform"),
                     ("CN", "jane")),
    "kcm-last-of-two-cn": _rdns(("CN", "alice"), ("CN", KCM)),
    "kcm-first-of-two-cn": _rdns(("CN", KCM), ("CN", "alice")),
}

# Subjects that look privileged but are not (name → shape, and whether it needs Unicode).
BENIGN_SHAPES: dict[str, Shape] = {
    "node-client": _rdns(("O", "system:nodes"), ("CN", "system:node:ip-10-0-7-21")),
    "user-cert": _rdns(("O", "developers"), ("CN", "jane")),
    "o-system-master": _rdns(("O", "system:master"), ("CN", "svc")),
    "o-capitalised": _rdns(("O", "System:Masters"), ("CN", "svc")),
    "o-masters-suffix": _rdns(("O", "system:masters-readonly"), ("CN", "auditor")),
    "o-masters-prefix": _rdns(("O", "xsystem:masters"), ("CN", "svc")),
    "o-masters-padded": _rdns(("O", " system:masters "), ("CN", "svc")),
    "cn-kcm-unprefixed": _rdns(("CN", "kube-controller-manager")),
    "cn-kcm-plural": _rdns(("CN", "system:kube-controller-managers")),
    "ou-masters": _rdns(("O", "platform"), ("OU", MASTERS), ("CN", "svc")),
    "cn-masters": _rdns(("CN", MASTERS)),  # a user named system:masters, not the group
    "san-masters": _rdns(("O", "developers"), ("CN", "web")),  # system:masters only as a SAN DNS name
    "o-masters-homoglyph": _rdns(("O", "system:m\u0430sters"), ("CN", "svc")),  # Cyrillic a
}
_SAN_SHAPES = {"san-masters": ("system:masters", "masters.example.com")}
_UNICODE_ONLY = {"o-masters-homoglyph"}


def build_subject(shape: Shape, string_type: str) -> Subject:
    return Subject(tuple(tuple(Attribute(name, value, string_type) for name, value in rdn) for rdn in shape))


@dataclass(frozen=True)
class LabeledRequest:
    """The audit events of one API request and the ground truth about what it asks for."""

    events: tuple[dict[str, Any], ...]
    asks_masters: bool
    asks_kube_controller_manager: bool
    encoding_family: str
    string_type: str
    key_type: str
    shape: str  # which subject (a key of MALICIOUS_SHAPES or BENIGN_SHAPES)

    @property
    def malicious(self) -> bool:
        return self.asks_masters or self.asks_kube_controller_manager


_ATTACKERS = (
    audit.human("mallory", user_agent=audit.USER_AGENTS["kubectl"], source_ip="203.0.113.7"),
    audit.human("ci-runner", user_agent=audit.USER_AGENTS["client-go"], source_ip="10.0.3.14"),
    audit.service_account("default", "compromised", user_agent=audit.USER_AGENTS["python"],
                          source_ip="10.4.2.9"),
    audit.human("eve", user_agent=audit.USER_AGENTS["curl"], source_ip="198.51.100.23"),
)
_ADMINS = (audit.human("jane", groups=("platform-admins",)), audit.human("sam", groups=("platform-admins",)))


def _labeled(rng: Random, index: int, shape_name: str, shape: Shape, family: str, string_type: str,
             key_type: str, requester: Requester) -> LabeledRequest:
    subject = build_subject(shape, string_type)
    csr = make_csr(subject, key_type, dns_names=_SAN_SHAPES.get(shape_name, ()))
    style = ENCODING_FAMILIES[family](rng)
    at = BASE_TIME + timedelta(seconds=index)
    obj = audit.new_csr(rng, requester, name=audit.generated_name(rng, "csr-"), csr=csr, style=style,
                        signer_name=rng.choice((audit.CLIENT_SIGNER, CUSTOM_SIGNER)), created=at,
                        expiration_seconds=rng.choice((None, 3600, 86400)))
    stages = audit.STAGES if rng.random() < 0.3 else ("ResponseComplete",)
    events = audit.csr_create(obj).events(rng, at, stages)
    return LabeledRequest(tuple(events), MASTERS in subject.groups, KCM in subject.values("CN"), family,
                          string_type, key_type, shape_name)


def efficacy_corpus(seed: int, malicious: int = 1000, benign: int = 1000) -> list[LabeledRequest]:
    """CSR creates labelled with what they ask for, covering every family, string type and key type.

    Item ``i`` of each half uses family ``i mod 7``, string type ``(i // 7) mod 5`` and key type
    ``(i // 35) mod 5``, so any 175 consecutive items cover every combination.
    """
    rng = Random(seed)
    families = list(ENCODING_FAMILIES)
    out: list[LabeledRequest] = []
    halves = (("malicious", malicious, MALICIOUS_SHAPES), ("benign", benign, BENIGN_SHAPES))
    for half, count, shapes in halves:
        for i in range(count):
            family = families[i % len(families)]
            string_type = STRING_TYPES[(i // len(families)) % len(STRING_TYPES)]
            key_type = KEY_TYPES[(i // (len(families) * len(STRING_TYPES))) % len(KEY_TYPES)]
            names = [n for n in shapes if string_type in ("utf8", "bmp") or n not in _UNICODE_ONLY]
            name = names[(i + rng.randrange(len(names))) % len(names)]
            if half == "malicious":
                requester = rng.choice(_ATTACKERS)
            elif name == "node-client":
                requester = audit.node("ip-10-0-7-21")
            else:
                requester = rng.choice(_ADMINS)
            offset = i if half == "malicious" else malicious + i
            out.append(_labeled(rng, offset, name, shapes[name], family, string_type, key_type, requester))
    return out


# --- scenarios -------------------------------------------------------------------------------

class _Traffic:
    """A running cluster: a clock, known clients, a pool of CSRs and CSRs awaiting approval/signing."""

    def __init__(self, seed: int, key_types: tuple[str, ...]) -> None:
        self.rng = Random(seed)
        self.clock = BASE_TIME
        self.nodes = [f"ip-10-0-{n // 250}-{n % 250 + 4}" for n in range(24)]
        self.kubelets = {name: audit.node(name) for name in self.nodes}  # made once, not per request
        self.pending: deque[CsrObject] = deque(maxlen=64)  # created, not yet approved
        self.approved: deque[CsrObject] = deque(maxlen=64)  # approved, not yet signed
        self.node_csrs = [audit.kubelet_csr(name, key_types[i % len(key_types)])
                          for i, name in enumerate(self.nodes[:6])]
        self.user_csrs = [make_csr(build_subject(BENIGN_SHAPES[name], "utf8"), key_types[i % len(key_types)],
                                   dns_names=_SAN_SHAPES.get(name, ()))
                          for i, name in enumerate(BENIGN_SHAPES) if name != "node-client"]
        self.attack_csrs = [make_csr(build_subject(shape, string_type), key_type)
                            for (_, shape), string_type, key_type in zip(
                                MALICIOUS_SHAPES.items(), STRING_TYPES * 2, key_types * 4, strict=False)]
        self.service_accounts = [
            audit.service_account(ns, name, user_agent=f"{name}/v0.0.0 (linux/amd64) kubernetes/$Format")
            for ns, name in (("kube-system", "coredns"), ("monitoring", "prometheus"),
                             ("argocd", "argocd-server"), ("kube-system", "kube-proxy"),
                             ("elastic", "elastic-agent"))]

    def tick(self, rate: float) -> None:
        self.clock += timedelta(seconds=self.rng.expovariate(rate))

    def style(self) -> PemStyle:
        families = list(ENCODING_FAMILIES)
        weights = [80, 8, 5, 2, 2, 1, 2]
        return ENCODING_FAMILIES[self.rng.choices(families, weights)[0]](self.rng)

    def stages(self) -> tuple[str, ...]:
        return audit.STAGES if self.rng.random() < 0.1 else ("ResponseComplete",)

    # --- requests ---

    def background(self) -> ApiRequest:
        """One ordinary request (not about CSRs)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            name = rng.choice(self.nodes)
            return audit.resource_request(rng, self.kubelets[name], "update", "leases",
                                          namespace="kube-node-lease", name=name)
        if roll < 0.4:
            name = rng.choice(self.nodes)
            return audit.resource_request(rng, self.kubelets[name], "patch", "nodes", name=name,
                                          subresource="status")
        if roll < 0.5:
            controller = audit.CONTROLLERS["kube-controller-manager"]
            return audit.resource_request(rng, controller, "update", "leases", namespace="kube-system",
                                          name="kube-controller-manager")
        requester = rng.choice(self.service_accounts)
        verb = rng.choice(("get", "get", "list", "watch"))
        resource = rng.choice(("pods", "configmaps", "secrets", "services", "endpointslices", "events",
                               "deployments"))
        namespace = requester.username.split(":")[2]
        outcome = "forbidden" if rng.random() < 0.01 else "allowed"
        name = "" if verb in ("list", "watch") else f"{resource[:-1]}-{rng.randrange(40)}"
        return audit.resource_request(rng, requester, verb, resource, namespace=namespace, name=name,
                                      outcome=outcome)

    def benign_csr(self) -> ApiRequest:
        """One benign CSR-related request, moving CSRs through create → approve → sign."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.2 and self.pending:
            obj = self.pending.popleft()
            if obj.requester.username.startswith(("system:node:", "system:bootstrap:")):
                controller = rng.choice(list(audit.CONTROLLERS))
                request, after = audit.controller_approve(obj, controller, self.clock)
            else:
                request, after = audit.csr_approve(obj, rng.choice(_ADMINS), self.clock,
                                                   verb=rng.choice(("update", "patch")))
            self.approved.append(after)
            return request
        if roll < 0.35 and self.approved:
            obj = self.approved.popleft()
            signer = audit.CONTROLLERS[rng.choice(("kube-controller-manager", "certificate-controller"))]
            return audit.csr_status(obj, signer, self.clock, rng)[0]
        if roll < 0.5:
            controller = audit.CONTROLLERS["kube-controller-manager"]
            return audit.resource_request(rng, controller, rng.choice(("list", "watch")), audit.CSR_RESOURCE)
        if roll < 0.85:
            index = rng.randrange(len(self.node_csrs))
            name = self.nodes[index]
            if rng.random() < 0.3:
                token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6))
                request, obj = audit.kubelet_bootstrap(rng, name, token, self.clock,
                                                       csr=self.node_csrs[index])
            else:
                request, obj = audit.node_renewal(rng, name, self.clock, csr=self.node_csrs[index])
        else:
            csr = rng.choice(self.user_csrs)
            obj = audit.new_csr(rng, rng.choice(_ADMINS), name=audit.generated_name(rng, "user-"), csr=csr,
                                style=self.style(), created=self.clock, expiration_seconds=86400)
            request = audit.csr_create(obj)
        self.pending.append(obj)
        return request

    def attack(self) -> list[ApiRequest]:
        """An attack: a privileged CSR, then (when it was accepted) approval by the attacker and signing."""
        rng = self.rng
        attacker = rng.choice(_ATTACKERS)
        obj = audit.new_csr(rng, attacker, name=audit.generated_name(rng, "csr-"),
                            csr=rng.choice(self.attack_csrs), style=self.style(), created=self.clock,
                            signer_name=rng.choice((audit.CLIENT_SIGNER, CUSTOM_SIGNER)),
                            expiration_seconds=rng.choice((None, 600, 31_536_000)))
        if rng.random() < 0.15:
            return [audit.csr_create(obj, outcome="forbidden")]
        create = audit.csr_create(obj)
        if create.outcome != "allowed":
            return [create]
        outcome = "admission-denied" if rng.random() < 0.2 else "allowed"
        approve, approved = audit.csr_approve(obj, attacker, self.clock + timedelta(seconds=0.2),
                                              verb=rng.choice(("update", "patch")), outcome=outcome)
        if outcome != "allowed":
            return [create, approve]
        signer = audit.CONTROLLERS["kube-controller-manager"]
        return [create, approve, audit.csr_status(approved, signer, self.clock, rng)[0]]


def generate(scenario: str, count: int, seed: int) -> Iterator[dict[str, Any]]:
    """``count`` raw audit events of ``scenario`` (see ``SCENARIOS``), the same for the same seed.

    The keys and the CSR pool are made by this call, so a process forked later to draw the
    events signs with the same keys as this one.
    """
    if scenario not in SCENARIOS:
        raise DacError(f"unknown scenario {scenario!r} (expected one of {', '.join(SCENARIOS)})")
    key_types = KEY_TYPES if scenario == "csr-attacks" else ("ec-p256", "ed25519", "rsa-2048")
    return _events(scenario, _Traffic(seed, key_types), count)


def _events(scenario: str, traffic: _Traffic, count: int) -> Iterator[dict[str, Any]]:
    rng = traffic.rng
    emitted = 0
    while emitted < count:
        if scenario == "mixed":
            roll = rng.random()
            if roll < 0.99:
                requests = [traffic.background()]
            else:
                requests = traffic.attack() if roll > 0.9995 else [traffic.benign_csr()]
            traffic.tick(400.0)
        elif scenario == "csr-attacks":
            requests = traffic.attack()
            traffic.tick(0.5)
        else:
            requests = [traffic.benign_csr()]
            traffic.tick(2.0)
        for position, request in enumerate(requests):
            if position:  # the next step of a sequence follows shortly after
                traffic.tick(0.2)
            for event in request.events(rng, traffic.clock, traffic.stages()):
                yield event
                emitted += 1
                if emitted == count:
                    return

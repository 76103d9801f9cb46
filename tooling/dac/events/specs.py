"""Compact event specs in rule test files, expanded into complete raw audit events.

A test file lists ``events:``; each item is a one-key mapping ``{kind: {key: value, …}}`` and
describes one API request (or, for ``raw``, one literal event). Requests are spaced ``delay``
seconds apart starting at ``BASE_TIME``; a request emitted at several stages yields one event
per stage with the same ``auditID``. Everything random comes from the seed, so a file always
expands to the same events (RSA signatures excepted: RSA keys are made fresh in each process).

Kinds and their keys (every key is optional):

======================  ==================================================================
kind / key              meaning
======================  ==================================================================
*every kind but raw*
``delay``               seconds after the previous request (number, default 1)
``stages``              list of ``RequestReceived`` / ``ResponseComplete``
                        (default ``[ResponseComplete]``)
*requests sent by a user* (csr_create, csr_approve, other_request)
``user``                user name (default ``alice``); ``system:node:<n>``,
                        ``system:bootstrap:<id>``, ``system:serviceaccount:<ns>:<n>`` and the
                        controller identities get their real groups and clients
``groups``              extra groups (list of strings)
``user_agent``          ``kubectl``, ``client-go``, ``python``, ``curl``, ``kubelet`` or a
                        literal User-Agent
``source_ip``           client address
``level``               audit level: ``Metadata``, ``Request``, ``RequestResponse``
                        (default RequestResponse; other_request: Metadata)
``outcome``             ``allowed`` (201/200), ``forbidden`` (authorization denies: 403,
                        decision forbid, body never decoded), ``admission-denied`` (403,
                        decision allow, body logged), ``invalid`` (422, body logged).
                        csr_create defaults to what a default API server does: a
                        ``system:masters`` subject for the kube-apiserver-client signer is
                        admission-denied (CertificateSubjectRestriction)
``denial``              the admission/validation message for those outcomes
**csr_create**          create a CertificateSigningRequest
``name``                CSR name (default ``csr-<random>``)
``generate_name``       send ``metadata.generateName`` with this prefix instead of a name
``subject``             mapping ``{CN: x, O: [a, b]}`` (one RDN per value, in the order
                        written) or a list of such one-key mappings; a nested list is a
                        multi-valued RDN (default ``{CN: <user>}``)
``string_type``         ``utf8``, ``printable``, ``ia5``, ``t61``, ``bmp``; or a mapping
                        attribute → type (default utf8)
``key``                 ``rsa-2048``, ``rsa-4096``, ``ec-p256``, ``ec-p384``, ``ed25519``
                        (default ec-p256)
``dns_names``           subjectAltName DNS names (list of strings)
``pem``                 PEM layout: ``line_width`` (0 = one line), ``newline`` (``lf`` or
                        ``crlf``), ``indent``, ``gap`` (whitespace every 4 base64 characters),
                        ``trailing`` (whitespace at line ends), ``headers`` (mapping),
                        ``before`` / ``after`` (text around the block)
``request``             a literal ``spec.request`` (base64), instead of subject/key/pem
``signer``              signerName (default kubernetes.io/kube-apiserver-client)
``usages``              list (default ``[client auth]``)
``expiration_seconds``  requested lifetime (integer)
**csr_approve**         ``update`` (or ``patch``) of the ``approval`` subresource
``csr``                 name of a CSR created earlier in the list (default: the latest)
``condition``           ``Approved`` or ``Denied`` (default Approved)
``verb``                ``update`` or ``patch`` (default update)
``reason`` ``message``  condition reason and message (default: kubectl's)
**csr_status**          the signer stores the issued certificate (``status`` subresource)
``csr``                 as for csr_approve
``controller``          identity of the signer (default kube-controller-manager)
``outcome`` ``level``   as above
**kubelet_bootstrap**   ``system:bootstrap:<token>`` creates the node's first client CSR
``node``                node name (default ``ip-10-0-1-5``)
``token_id``            bootstrap token id (default random, 6 characters)
``key`` ``pem``         as for csr_create
**node_renewal**        ``system:node:<node>`` creates a CSR to renew its certificate
``node`` ``key`` ``pem`` as above
``serving``             true: a kubelet-serving certificate (with DNS names)
**controller_approve**  automatic approval of a CSR by a controller
``csr``                 as for csr_approve
``controller``          ``kube-controller-manager``, ``certificate-controller``, ``eks``,
                        ``aks``, ``gke`` (default certificate-controller)
**other_request**       any request on another resource
``resource``            pods, configmaps, secrets, leases, nodes, … (default pods)
``verb``                get, list, watch, create, update, patch, delete (default get)
``namespace`` ``name``  target (namespaced resources default to ``default``)
**raw**                 a complete audit event, used as written
======================  ==================================================================
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from dac.errors import EventError
from dac.events import audit
from dac.events.audit import ApiRequest, CsrObject, Requester
from dac.events.csr import KEY_TYPES, Attribute, Csr, PemStyle, Subject, make_csr

BASE_TIME = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

_COMMON = ("delay", "stages")
_USER = ("user", "groups", "user_agent", "source_ip", "level", "outcome", "denial")
_CSR = ("subject", "string_type", "key", "dns_names", "pem")
KINDS: dict[str, tuple[str, ...]] = {
    "csr_create": (*_COMMON, *_USER, *_CSR, "name", "generate_name", "request", "signer", "usages",
                   "expiration_seconds"),
    "csr_approve": (*_COMMON, *_USER, "csr", "condition", "verb", "reason", "message"),
    "csr_status": (*_COMMON, "csr", "controller", "outcome", "level"),
    "kubelet_bootstrap": (*_COMMON, "node", "token_id", "key", "pem", "source_ip"),
    "node_renewal": (*_COMMON, "node", "key", "pem", "serving", "source_ip"),
    "controller_approve": (*_COMMON, "csr", "controller"),
    "other_request": (*_COMMON, *_USER, "resource", "verb", "namespace", "name"),
    "raw": (),
}
_PEM_KEYS = ("line_width", "newline", "indent", "gap", "trailing", "headers", "before", "after")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


class _Spec:
    """One spec item's keys, read with type checks that name the offending key."""

    def __init__(self, where: str, body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        self.where = where
        self.body = body
        for key in body:
            if key not in allowed:
                raise EventError(f"{where}: unknown key {key!r} (expected one of {', '.join(allowed)})")

    def error(self, key: str, message: str) -> EventError:
        return EventError(f"{self.where}.{key}: {message}")

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        value = self.body.get(key)
        if value is None:
            return default
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise self.error(key, f"expected {_TYPE_NAMES[kind]}, got {_describe(value)}")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.body.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key, f"expected a list of strings, got {_describe(value)}")
        return tuple(value)

    def choice(self, key: str, options: tuple[str, ...] | list[str], default: str | None) -> Any:
        value = self.get(key, str, default)
        if value is not None and value not in options:
            raise self.error(key, f"{value!r} is not one of {', '.join(options)}")
        return value

    def attempt(self, key: str, build: Callable[[], Any]) -> Any:
        """Run ``build``; a ValueError it raises becomes an error about ``key``."""
        try:
            return build()
        except ValueError as exc:
            raise self.error(key, str(exc)) from None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in _TYPE_NAMES.items():
        if isinstance(value, kind):
            return f"{name} ({value!r})" if isinstance(value, str | int | float) else name
    return "null" if value is None else type(value).__name__


class _Expander:
    def __init__(self, seed: int) -> None:
        self.rng = Random(seed)
        self.clock = BASE_TIME
        self.csrs: dict[str, CsrObject] = {}
        self.latest = ""

    def expand(self, index: int, item: Any) -> list[dict[str, Any]]:
        where = f"events[{index}]"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise EventError(f"{where}: expected a mapping with one key, the kind "
                             f"(one of {', '.join(KINDS)}), got {_describe(item)}")
        (kind, body), = item.items()
        if kind not in KINDS:
            raise EventError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        where = f"{where}.{kind}"
        if kind == "raw":
            if not isinstance(body, Mapping):
                raise EventError(f"{where}: expected a complete audit event (a mapping), "
                                 f"got {_describe(body)}")
            return [copy.deepcopy(dict(body))]
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise EventError(f"{where}: expected a mapping of keys, got {_describe(body)}")
        spec = _Spec(where, body, KINDS[kind])
        delay = spec.get("delay", float, 1)
        if delay < 0:
            raise spec.error("delay", "must not be negative")
        self.clock += timedelta(seconds=delay)
        stages = spec.strings("stages", ("ResponseComplete",))
        for stage in stages:
            if stage not in audit.STAGES:
                raise spec.error("stages", f"{stage!r} is not one of {', '.join(audit.STAGES)}")
        request = getattr(self, kind)(spec)
        return request.events(self.rng, self.clock, stages)

    # --- shared readers ---

    def requester(self, spec: _Spec, default_user: str = "alice") -> Requester:
        username = spec.get("user", str, default_user)
        by_name = {r.username: r for r in audit.CONTROLLERS.values()}
        if username in by_name:
            requester = by_name[username]
        elif username.startswith("system:node:"):
            requester = audit.node(username.removeprefix("system:node:"))
        elif username.startswith("system:bootstrap:"):
            requester = audit.bootstrap(username.removeprefix("system:bootstrap:"))
        elif username.startswith("system:serviceaccount:") and username.count(":") == 3:
            namespace, name = username.split(":")[2:]
            requester = audit.service_account(namespace, name, user_agent=audit.USER_AGENTS["client-go"])
        else:
            requester = audit.human(username)
        groups = spec.strings("groups")
        if groups:
            requester = replace(requester, groups=(*groups, *requester.groups))
        agent = spec.get("user_agent", str)
        if agent:
            requester = replace(requester, user_agent=audit.USER_AGENTS.get(agent, agent))
        source_ip = spec.get("source_ip", str)
        if source_ip:
            requester = replace(requester, source_ip=source_ip)
        return requester

    def style(self, spec: _Spec) -> PemStyle:
        pem = spec.get("pem", dict, {})
        pem_spec = _Spec(f"{spec.where}.pem", pem, _PEM_KEYS)  # checks the keys
        newline = pem_spec.choice("newline", ("lf", "crlf"), "lf")
        headers = pem_spec.get("headers", dict, {})
        if not all(isinstance(v, str | int) for v in headers.values()):
            raise pem_spec.error("headers", "header values must be strings")
        return spec.attempt("pem", lambda: PemStyle(
            line_width=pem_spec.get("line_width", int, 64),
            newline="\r\n" if newline == "crlf" else "\n",
            indent=pem_spec.get("indent", str, ""),
            gap=pem_spec.get("gap", str, ""),
            trailing=pem_spec.get("trailing", str, ""),
            headers=tuple((str(k), str(v)) for k, v in headers.items()),
            before=pem_spec.get("before", str, ""),
            after=pem_spec.get("after", str, ""),
        ))

    def key(self, spec: _Spec) -> str:
        return spec.choice("key", KEY_TYPES, "ec-p256")

    def subject(self, spec: _Spec, default_cn: str) -> Subject:
        raw = spec.body.get("subject", {"CN": default_cn})
        types = spec.body.get("string_type", "utf8")
        if not isinstance(types, str | Mapping):
            raise spec.error("string_type", f"expected a string or a mapping, got {_describe(types)}")

        def attributes(entry: Any) -> list[Attribute]:
            if not isinstance(entry, Mapping):
                raise spec.error("subject", f"expected a mapping of attributes, got {_describe(entry)}")
            out = []
            for name, values in entry.items():
                values = values if isinstance(values, list) else [values]
                string_type = types if isinstance(types, str) else types.get(name, "utf8")
                for value in values:
                    if not isinstance(value, str):
                        raise spec.error("subject", f"{name}: expected a string, got {_describe(value)}")
                    build = functools.partial(Attribute, name, value, string_type)
                    out.append(spec.attempt("subject", build))
            return out

        if isinstance(raw, Mapping):
            return Subject.of(*attributes(raw))
        if not isinstance(raw, list):
            raise spec.error("subject", f"expected a mapping or a list, got {_describe(raw)}")
        rdns: list[tuple[Attribute, ...]] = []
        for entry in raw:
            if isinstance(entry, list):  # one multi-valued RDN
                rdns.append(tuple(a for part in entry for a in attributes(part)))
            else:
                rdns.extend((a,) for a in attributes(entry))
        return Subject(tuple(rdns))

    def stored(self, spec: _Spec) -> CsrObject:
        name = spec.get("csr", str, self.latest)
        if not name:
            raise spec.error("csr", "no CSR was created earlier in this list")
        if name not in self.csrs:
            raise spec.error("csr", f"no CSR named {name!r} was created earlier in this list "
                                    f"(created: {', '.join(self.csrs) or 'none'})")
        return self.csrs[name]

    def remember(self, obj: CsrObject) -> None:
        self.csrs[obj.name] = obj
        self.latest = obj.name

    def outcome(self, spec: _Spec, default: str | None = "allowed") -> Any:
        return spec.choice("outcome", audit.OUTCOMES, default)

    def level(self, spec: _Spec, default: str = "RequestResponse") -> str:
        return spec.choice("level", audit.LEVELS, default)

    # --- kinds ---

    def csr_create(self, spec: _Spec) -> ApiRequest:
        requester = self.requester(spec)
        request = spec.get("request", str, "")
        csr: Csr | None = None
        if request:
            for key in _CSR:
                if key in spec.body:
                    raise spec.error(key, "cannot be combined with a literal 'request'")
        else:
            subject = self.subject(spec, requester.username)
            dns_names = spec.strings("dns_names")
            key_type = self.key(spec)
            csr = spec.attempt("dns_names", lambda: make_csr(subject, key_type, dns_names=dns_names))
        style = self.style(spec) if csr else None
        expiration = spec.get("expiration_seconds", int)
        generate_name = spec.get("generate_name", str, "")
        name = spec.get("name", str, "") or ("" if generate_name else audit.generated_name(self.rng, "csr-"))
        obj = audit.new_csr(self.rng, requester, name=name, csr=csr, request=request,
                            signer_name=spec.get("signer", str, audit.CLIENT_SIGNER),
                            usages=spec.strings("usages", ("client auth",)), expiration_seconds=expiration,
                            generate_name=generate_name, created=self.clock, style=style)
        api_request = audit.csr_create(obj, outcome=self.outcome(spec, None), level=self.level(spec),
                                       denial=spec.get("denial", str, ""))
        if api_request.outcome == "allowed":
            self.remember(obj)
        return api_request

    def csr_approve(self, spec: _Spec) -> ApiRequest:
        obj = self.stored(spec)
        request, after = spec.attempt("condition", lambda: audit.csr_approve(
            obj, self.requester(spec, "bob"), self.clock,
            condition=spec.get("condition", str, "Approved"),
            reason=spec.get("reason", str, ""), message=spec.get("message", str, ""),
            verb=spec.choice("verb", ("update", "patch"), "update"),
            outcome=self.outcome(spec), level=self.level(spec), denial=spec.get("denial", str, "")))
        self.csrs[obj.name] = after
        return request

    def csr_status(self, spec: _Spec) -> ApiRequest:
        obj = self.stored(spec)
        controller = spec.choice("controller", list(audit.CONTROLLERS), "kube-controller-manager")
        request, after = spec.attempt("csr", lambda: audit.csr_status(
            obj, audit.CONTROLLERS[controller], self.clock, self.rng,
            outcome=self.outcome(spec), level=self.level(spec)))
        self.csrs[obj.name] = after
        return request

    def kubelet_bootstrap(self, spec: _Spec) -> ApiRequest:
        node = spec.get("node", str, "ip-10-0-1-5")
        token = spec.get("token_id", str) or "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                                     for _ in range(6))
        csr = audit.kubelet_csr(node, self.key(spec))
        request, obj = audit.kubelet_bootstrap(self.rng, node, token, self.clock, csr=csr,
                                               style=self.style(spec))
        return self._node_request(spec, request, obj)

    def node_renewal(self, spec: _Spec) -> ApiRequest:
        node = spec.get("node", str, "ip-10-0-1-5")
        serving = spec.get("serving", bool, False)
        dns = (node, f"{node}.ec2.internal") if serving else ()
        csr = audit.kubelet_csr(node, self.key(spec), dns_names=dns)
        request, obj = audit.node_renewal(self.rng, node, self.clock, serving=serving, csr=csr,
                                          style=self.style(spec))
        return self._node_request(spec, request, obj)

    def _node_request(self, spec: _Spec, request: ApiRequest, obj: CsrObject) -> ApiRequest:
        """A node's CSR request, sent from the address the spec names; its CSR is remembered."""
        if "source_ip" in spec.body:
            request = replace(request, requester=replace(request.requester,
                                                         source_ip=spec.get("source_ip", str)))
        self.remember(obj)
        return request

    def controller_approve(self, spec: _Spec) -> ApiRequest:
        obj = self.stored(spec)
        controller = spec.choice("controller", list(audit.CONTROLLERS), "certificate-controller")
        request, after = audit.controller_approve(obj, controller, self.clock)
        self.csrs[obj.name] = after
        return request

    def other_request(self, spec: _Spec) -> ApiRequest:
        resource = spec.choice("resource", list(audit.RESOURCES), "pods")
        verb = spec.choice("verb", ("get", "list", "watch", "create", "update", "patch", "delete"), "get")
        return audit.resource_request(
            self.rng, self.requester(spec), verb, resource, namespace=spec.get("namespace", str, ""),
            name=spec.get("name", str, "") or ("" if verb in ("list", "watch") else f"{resource[:-1]}-1"),
            outcome=self.outcome(spec), level=self.level(spec, "Metadata"),
            denial=spec.get("denial", str, ""))


def expand_events(specs: list[Any], seed: int) -> list[dict[str, Any]]:
    """The raw audit events ``specs`` describe, in order; EventError names the bad spec and key."""
    if not isinstance(specs, list):
        raise EventError(f"events: expected a list of event specs, got {_describe(specs)}")
    expander = _Expander(seed)
    events: list[dict[str, Any]] = []
    for index, item in enumerate(specs):
        events.extend(expander.expand(index, item))
    return events

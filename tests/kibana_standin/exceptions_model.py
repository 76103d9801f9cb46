"""Kibana's exception lists and items without HTTP: storage per namespace, response shapes, versions.

Sources (elastic/kibana, ``LISTS`` = ``x-pack/solutions/security/plugins/lists/server``):
- response shapes: ``LISTS/services/exception_lists/utils/index.ts`` (``transformSavedObjectToExceptionList``,
  ``...ToExceptionListItem``: ``_version``, ``id``, ``tie_breaker_id``, ``created_*``/``updated_*``,
  list ``immutable: false`` and ``version: 1`` by default, item ``type: simple``, ``comments: []``);
- comments: ``transformCreateCommentsToComments`` (each new comment gets ``id``, ``created_at``,
  ``created_by``) and ``transformUpdateCommentsToComments`` (on update, existing comments are kept and
  only comments sent without ``id`` are added);
- namespaces: a ``single`` list or item is a saved object of its space (``exception-list``), an
  ``agnostic`` one is space-agnostic (``exception-list-agnostic``), ``@kbn/securitysolution-list-utils``
  ``getSavedObjectType``; ids (``list_id``/``item_id``) are unique per namespace;
- ``_version``: the saved object's version, base64 of ``[seq_no, primary_term]``; an update that sends
  a different ``_version`` is a 409 conflict (saved objects' optimistic concurrency);
- delete of a list deletes its items (``LISTS/services/exception_lists/delete_exception_list.ts`` →
  ``deleteExceptionListItemByList``).
"""

from __future__ import annotations

import base64
import itertools
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

AGNOSTIC = "agnostic"
NAMESPACE_TYPES = ("single", "agnostic")
LIST_TYPES = ("detection", "rule_default", "endpoint", "endpoint_trusted_apps", "endpoint_events",
              "endpoint_host_isolation_exceptions", "endpoint_blocklists")
ENTRY_TYPES = ("match", "match_any", "exists", "wildcard", "nested", "list")


class ExceptionError(Exception):
    """A handler-level error: ``buildSiemResponse`` ``{message, status_code}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ExceptionStore:
    """Lists and items keyed by (namespace, id): the namespace is the space for ``single``, one global
    namespace for ``agnostic``."""

    def __init__(self) -> None:
        self.lists: dict[tuple[str, str], dict[str, Any]] = {}
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self._lock = threading.RLock()

    @staticmethod
    def namespace(space: str, namespace_type: str) -> str:
        return "\0agnostic" if namespace_type == AGNOSTIC else space

    def _version(self) -> str:
        return base64.b64encode(f"[{next(self._seq)},1]".encode()).decode()

    # -- lists ------------------------------------------------------------------------------------

    def find_list(self, space: str, namespace_type: str, *, list_id: Any = None,
                  id: Any = None) -> dict[str, Any] | None:
        ns = self.namespace(space, namespace_type)
        if list_id is not None:
            return self.lists.get((ns, str(list_id)))
        return next((lst for (n, _), lst in self.lists.items() if n == ns and lst["id"] == id), None)

    def create_list(self, space: str, body: dict[str, Any], user: str, now: str) -> dict[str, Any]:
        """create_exception_list_route.ts: 409 ``exception list id: "x" already exists``."""
        namespace_type = body.get("namespace_type", "single")
        list_id = str(body.get("list_id") or uuid.uuid4())
        with self._lock:
            if self.find_list(space, namespace_type, list_id=list_id) is not None:
                raise ExceptionError(409, f'exception list id: "{list_id}" already exists')
            created = {
                "_version": self._version(), "created_at": now, "created_by": user,
                "description": body["description"], "id": str(uuid.uuid4()), "immutable": False,
                "list_id": list_id, "name": body["name"], "namespace_type": namespace_type,
                "os_types": list(body.get("os_types") or []), "tags": list(body.get("tags") or []),
                "tie_breaker_id": str(uuid.uuid4()), "type": body["type"], "updated_at": now,
                "updated_by": user, "version": int(body.get("version") or 1),
            }
            if body.get("meta") is not None:
                created["meta"] = body["meta"]
            self.lists[(self.namespace(space, namespace_type), list_id)] = created
            return _copy(created)

    def update_list(self, space: str, body: dict[str, Any], user: str, now: str) -> dict[str, Any]:
        """update_exception_list_route.ts → update_exception_list.ts: 404 for an unknown list, the
        sent fields replace the stored ones, 409 for a stale ``_version``."""
        namespace_type = body.get("namespace_type", "single")
        with self._lock:
            found = self.find_list(space, namespace_type, list_id=body.get("list_id"), id=body.get("id"))
            if found is None:
                which = (f'id: "{body["id"]}"' if body.get("id") is not None
                         else f'list_id: "{body.get("list_id")}"')
                raise ExceptionError(404, f"exception list {which} does not exist")
            _check_version(found, body)
            for key in ("name", "description", "type", "tags", "os_types", "meta", "version"):
                if key in body and body[key] is not None:
                    found[key] = body[key]
            found.update(_version=self._version(), updated_at=now, updated_by=user)
            return _copy(found)

    def delete_list(self, space: str, namespace_type: str, *, list_id: Any = None,
                    id: Any = None) -> dict[str, Any] | None:
        with self._lock:
            found = self.find_list(space, namespace_type, list_id=list_id, id=id)
            if found is None:
                return None
            ns = self.namespace(space, namespace_type)
            del self.lists[(ns, found["list_id"])]
            for key in [k for k, item in self.items.items()
                        if k[0] == ns and item["list_id"] == found["list_id"]]:
                del self.items[key]
            return _copy(found)

    def lists_of(self, space: str, namespace_types: Iterable[str]) -> list[dict[str, Any]]:
        spaces = {self.namespace(space, t) for t in namespace_types}
        with self._lock:
            return [_copy(lst) for (ns, _), lst in self.lists.items() if ns in spaces]

    # -- items ------------------------------------------------------------------------------------

    def find_item(self, space: str, namespace_type: str, *, item_id: Any = None,
                  id: Any = None) -> dict[str, Any] | None:
        ns = self.namespace(space, namespace_type)
        if item_id is not None:
            return self.items.get((ns, str(item_id)))
        return next((it for (n, _), it in self.items.items() if n == ns and it["id"] == id), None)

    def create_item(self, space: str, body: dict[str, Any], user: str, now: str) -> dict[str, Any]:
        """create_exception_list_item_route.ts: 404 ``exception list id: "x" does not exist`` for an
        unknown list, 409 ``exception list item id: "x" already exists`` (item_id per namespace)."""
        namespace_type = body.get("namespace_type", "single")
        item_id = str(body.get("item_id") or uuid.uuid4())
        with self._lock:
            if self.find_list(space, namespace_type, list_id=body["list_id"]) is None:
                raise ExceptionError(404, f'exception list id: "{body["list_id"]}" does not exist')
            if self.find_item(space, namespace_type, item_id=item_id) is not None:
                raise ExceptionError(409, f'exception list item id: "{item_id}" already exists')
            created = {
                "_version": self._version(),
                "comments": [_new_comment(c, user, now) for c in body.get("comments") or []],
                "created_at": now, "created_by": user, "description": body["description"],
                "entries": body["entries"], "id": str(uuid.uuid4()), "item_id": item_id,
                "list_id": body["list_id"], "name": body["name"], "namespace_type": namespace_type,
                "os_types": list(body.get("os_types") or []), "tags": list(body.get("tags") or []),
                "tie_breaker_id": str(uuid.uuid4()), "type": body.get("type", "simple"),
                "updated_at": now, "updated_by": user,
            }
            for key in ("meta", "expire_time"):
                if body.get(key) is not None:
                    created[key] = body[key]
            self.items[(self.namespace(space, namespace_type), item_id)] = created
            return _copy(created)

    def update_item(self, space: str, body: dict[str, Any], user: str, now: str) -> dict[str, Any]:
        """update_exception_list_item_route.ts → update_overwrite_exception_list_item.ts: the item is
        overwritten with what is sent (``expire_time`` and ``meta`` as sent), existing comments are kept
        and comments without ``id`` added; 404 ``exception list item item_id: "x" does not exist``;
        409 for a stale ``_version``."""
        namespace_type = body.get("namespace_type", "single")
        with self._lock:
            found = self.find_item(space, namespace_type, item_id=body.get("item_id"), id=body.get("id"))
            if found is None:
                which = (f'id: "{body["id"]}"' if body.get("id") is not None
                         else f'item_id: "{body.get("item_id")}"')
                raise ExceptionError(404, f"exception list item {which} does not exist")
            _check_version(found, body)
            known = {c["id"] for c in found["comments"]}
            for comment in body.get("comments") or []:
                if comment.get("id") is not None and comment["id"] not in known:
                    # validate_comments_to_update.ts / transformUpdateCommentsToComments
                    raise ExceptionError(400, f'comment id: "{comment["id"]}" does not exist')
            found["comments"] = found["comments"] + [
                _new_comment(c, user, now) for c in body.get("comments") or [] if c.get("id") is None]
            for key in ("name", "description", "entries", "type"):
                if body.get(key) is not None:
                    found[key] = body[key]
            found["os_types"] = list(body.get("os_types") or [])
            found["tags"] = list(body.get("tags") or [])
            for key in ("meta", "expire_time"):
                if body.get(key) is not None:
                    found[key] = body[key]
                else:
                    found.pop(key, None)
            found.update(_version=self._version(), updated_at=now, updated_by=user)
            return _copy(found)

    def delete_item(self, space: str, namespace_type: str, *, item_id: Any = None,
                    id: Any = None) -> dict[str, Any] | None:
        with self._lock:
            found = self.find_item(space, namespace_type, item_id=item_id, id=id)
            if found is None:
                return None
            del self.items[(self.namespace(space, namespace_type), found["item_id"])]
            return _copy(found)

    def items_of(self, space: str, lists: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """Items of the (list_id, namespace_type) lists, oldest first (the saved-objects find order
        when no sort is given is not specified; the stand-in keeps creation order)."""
        wanted = {(self.namespace(space, ns), list_id) for list_id, ns in lists}
        with self._lock:
            return [_copy(item) for (ns, _), item in self.items.items() if (ns, item["list_id"]) in wanted]

    def drop_space(self, space: str) -> None:
        with self._lock:
            for store in (self.lists, self.items):
                for key in [k for k in store if k[0] == space]:
                    del store[key]


def validate_list(body: Any, *, update: bool = False) -> list[str]:
    """The zod schema of create/update exception list (common/api/.../create_exception_list.schema.yaml)."""
    if not isinstance(body, dict):
        return ["Expected object"]
    problems = [f"{key}: Required" for key in ("name", "type") if not body.get(key)]
    if not isinstance(body.get("description"), str):  # z.string(): may be empty
        problems.append("description: Required")
    if body.get("type") and body["type"] not in LIST_TYPES:
        problems.append(f"type: Invalid enum value '{body['type']}'")
    if body.get("namespace_type", "single") not in NAMESPACE_TYPES:
        problems.append("namespace_type: Invalid enum value. Expected 'agnostic' | 'single'")
    return problems


def validate_item(body: Any) -> list[str]:
    """create/update exception list item schemas (``ExceptionListItemEntryArray``, non-empty)."""
    if not isinstance(body, dict):
        return ["Expected object"]
    problems = ["name: Required"] if not body.get("name") else []
    if not isinstance(body.get("description"), str):  # ExceptionListItemDescription is z.string()
        problems.append("description: Required")
    entries = body.get("entries")
    if not isinstance(entries, list) or not entries:
        problems.append("entries: Required")
    else:
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry.get("type") not in ENTRY_TYPES or not entry.get("field"):
                problems.append(f"entries.{n}: Invalid input")
    if body.get("namespace_type", "single") not in NAMESPACE_TYPES:
        problems.append("namespace_type: Invalid enum value. Expected 'agnostic' | 'single'")
    return problems


def _check_version(found: dict[str, Any], body: dict[str, Any]) -> None:
    sent = body.get("_version")
    if sent is not None and sent != found["_version"]:
        raise ExceptionError(409, f"[exception-list:{found['id']}]: version conflict, required seqNo and "
                                  "primary term do not match the document's")


def _new_comment(comment: dict[str, Any], user: str, now: str) -> dict[str, Any]:
    return {"comment": comment["comment"], "created_at": now, "created_by": user, "id": str(uuid.uuid4())}


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(value))

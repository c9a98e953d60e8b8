"""`/api/v1`: the original Dock2Box REST contract (etcdrest), over the same services as the admin and `/api/v2`.

Documents are the etcd projection of `provisioning.mirror` read back as nested objects, so `/api/v1` and etcd always
agree; writes go through the importer's per-document functions (the services underneath), so validation, the etcd
mirror and build mode apply. Differences from the original: writes need an API token, a PUT replaces (fields left
out are removed), and `/hwaddr` follows the interfaces instead of being written by hand.
"""

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonschema
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, transaction
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from dock2box.api.exceptions import protected_names
from dock2box.jsonbody import parse_json
from dock2box.validators import normalise_fqdn, normalise_mac
from hosts import services as host_services
from hosts.addressing import subnet_network
from hosts.models import Host, Interface, Site, Subnet
from hosts.selectors import host_list, interface_list, site_list, subnet_list
from images import services as image_services
from images.models import Image
from images.selectors import image_list
from provisioning.compat.schemas import REGISTRY, SCHEMAS
from provisioning.compat.selectors import document_keys
from provisioning.mirror import importer
from provisioning.mirror.sync import desired_documents, nest

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Resource:
    kind: str  # the etcd directory: host, image, hwaddr, subnets, sites
    dir_name: str  # the key's name in `?table=true` rows
    schema: str
    model: type
    permission: str  # app_label.model_name


RESOURCES = {
    "hosts": Resource("host", "hostname", "host", Host, "hosts.host"),
    "images": Resource("image", "image", "image", Image, "images.image"),
    "hwaddr": Resource("hwaddr", "hwaddr", "hwaddr", Interface, "hosts.interface"),
    "subnets": Resource("subnets", "subnet", "subnet", Subnet, "hosts.subnet"),
    "sites": Resource("sites", "site", "site", Site, "hosts.site"),
}


class Problem(Exception):
    """An answer other than 200: a status and the original's list of error strings."""

    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(messages)
        self.status, self.messages = status, list(messages)


def _render(request: HttpRequest, status: int, data: Any) -> HttpResponse:
    if request.GET.get("envelope") == "true":
        data = {"code": status, "data": data}
    indent = None if request.GET.get("indent") == "false" else 2
    return HttpResponse(json.dumps(data, indent=indent), status=status, content_type="application/json; charset=utf-8")


def read_documents(kind: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Documents as the original served them (nested, string values), by key; missing keys are left out."""
    found = desired_documents({f"{kind}/{key}" for key in keys})
    prefix = settings.DOCK2BOX_ETCD_PREFIX
    return {
        name.partition("/")[2]: nest(values, f"{prefix}/{name}") for name, values in sorted(found.items()) if values
    }


def _document(resource: Resource, key: str) -> dict[str, Any]:
    document = read_documents(resource.kind, [key]).get(key)
    if document is None:
        raise Problem(404, f"/{resource.kind}/{key}: not found")
    return document


def _authorize(request: HttpRequest, resource: Resource, action: str) -> None:
    if action == "view" and settings.DOCK2BOX_V1_ANONYMOUS_READ:
        return
    try:
        found = TokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    except AuthenticationFailed as error:
        raise Problem(401, str(error.detail)) from error
    if found is None:
        raise Problem(401, "Authentication needed: send `Authorization: Token <key>`.")
    request.user = found[0]  # who acts, for the history the services write
    app_label, model = resource.permission.split(".")
    granting = ("view", "change") if action == "view" else (action,)  # change implies view, as in the admin and v2
    if not any(found[0].has_perm(f"{app_label}.{each}_{model}") for each in granting):
        raise Problem(403, f"No permission to {action} {model}s.")


def _body(request: HttpRequest) -> Any:
    if len(request.body) > MAX_BODY:
        raise Problem(413, f"The body is over {MAX_BODY} bytes.")
    try:
        return parse_json(request.body or b"null")
    except ValueError as error:
        raise Problem(400, f"The body is not JSON: {error}") from error


def validate(schema: str, document: Any, path: str) -> None:
    """Check a document against its JSON Schema; every error names the path and the reason."""
    validator = jsonschema.Draft4Validator(
        SCHEMAS[schema], registry=REGISTRY, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path)):
        where = "/".join([path.rstrip("/"), *(str(part) for part in error.absolute_path)])
        problems.append(f"{where}: {_reason(error)}")
    if problems:
        raise Problem(400, *problems)


def _reason(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern":
        return f"does not match pattern {error.validator_value}"
    if error.validator == "enum":
        return f"must be one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "format":
        return f"is not a valid {error.validator_value}"
    return error.message


def _store(action: Callable[[], object], path: str) -> None:
    try:
        with transaction.atomic():
            action()
    except importer.Rejected as error:
        raise Problem(400, str(error)) from error
    except ValidationError as error:
        raise Problem(400, importer.messages(error, path)) from error
    except ProtectedError as error:
        users = ", ".join(protected_names(error, most=5))
        raise Problem(400, f"{path}: still in use by {users}; change or delete those first") from error


def _put(resource: Resource, key: str, document: Any) -> None:
    path = f"/{resource.kind}/{key}"
    validate(resource.schema, document, path)
    if resource.kind == "hwaddr":
        _hwaddr_check(key, document)
        return
    handler = {
        "host": importer.host_put,
        "image": importer.image_put,
        "subnets": importer.subnet_put,
        "sites": importer.site_put,
    }[resource.kind]
    _store(lambda: handler(key, document, path, set()), path)


def _hwaddr_check(mac: str, document: dict[str, Any]) -> None:
    interface = interface_list().filter(mac=mac).first()
    if interface is None or (interface.host.fqdn, interface.name) != (document["hostname"], document["interface"]):
        raise Problem(400, f"/hwaddr/{mac}: the index follows the hosts' interfaces; change the host instead")


def _delete(resource: Resource, key: str) -> None:
    path = f"/{resource.kind}/{key}"
    if resource.kind == "hwaddr":
        raise Problem(400, f"{path}: the index follows the hosts' interfaces; delete the interface instead")
    deleters: dict[str, Callable[[], None]] = {
        "host": lambda: host_services.host_delete(host=host_list().get(fqdn=key)),
        "image": lambda: image_services.image_delete(image=image_list().get(name=key)),
        "subnets": lambda: host_services.subnet_delete(subnet=subnet_list().get(network=subnet_network(key))),
        "sites": lambda: host_services.site_delete(site=site_list().get(name=key)),
    }
    _store(deleters[resource.kind], path)


def _patch(current: Any, body: Any, path: str) -> Any:
    try:
        return jsonpatch.apply_patch(current, body)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as error:
        raise Problem(400, f"{path}: the JSON Patch does not apply: {error}") from error


def _answer(view: Callable[..., tuple[int, Any]]) -> Callable[..., HttpResponse]:
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            status, data = view(request, *args, **kwargs)
        except Problem as problem:
            status, data = problem.status, problem.messages
        except DataError as error:  # a key the database cannot compare (a NUL character): the client's
            status, data = 400, [f"A value cannot be looked up as sent: {str(error).splitlines()[0]}"]
        except ValidationError as error:  # a rule no check above named: still the client's, with its reason
            status, data = 400, error.messages
        return _render(request, status, data)

    return csrf_exempt(wrapper)


def _key(collection: str, key: str) -> str:
    """A resource's key as it is stored: a MAC as the one normaliser writes it, a host's FQDN lower case without its
    trailing dot; a key that is no MAC in `/hwaddr` is the client's error (400)."""
    if collection == "hwaddr":
        try:
            return normalise_mac(key)
        except ValidationError as error:
            raise Problem(400, f"/hwaddr/{key[:64]}: {error.messages[0]}") from error
    if collection == "hosts":
        with contextlib.suppress(ValidationError):  # no host has a name that is no FQDN: its look-up finds none
            return normalise_fqdn(key)
    return key


@_answer
def collection(request: HttpRequest, collection: str) -> tuple[int, Any]:
    """`GET /api/v1/<collection>` (`?table=true` → an array with the key under its dirName)."""
    resource = RESOURCES[collection]
    if request.method != "GET":
        raise Problem(405, "Only GET on a collection; create with PUT on the resource.")
    _authorize(request, resource, "view")
    documents = read_documents(resource.kind, document_keys(kind=resource.kind))
    if request.GET.get("table") == "true":
        return 200, [{**document, resource.dir_name: key} for key, document in documents.items()]
    return 200, documents


@_answer
def resource(request: HttpRequest, collection: str, key: str) -> tuple[int, Any]:
    """`GET|PUT|PATCH|DELETE /api/v1/<collection>/<key>`."""
    resource = RESOURCES[collection]
    if request.method != "GET":
        _authorize(request, resource, "view")  # who asks, before anything is looked up for them (401 first)
    key = _key(collection, key)
    if request.method == "GET":
        _authorize(request, resource, "view")
        return 200, _document(resource, key)
    if request.method == "PUT":
        exists = bool(read_documents(resource.kind, [key]))
        _authorize(request, resource, "change" if exists else "add")
        _put(resource, key, _body(request))
        return 200, _document(resource, key)
    if request.method == "PATCH":
        _authorize(request, resource, "change")
        current = _document(resource, key)
        _put(resource, key, _patch(current, _body(request), f"/{resource.kind}/{key}"))
        return 200, _document(resource, key)
    if request.method == "DELETE":
        _authorize(request, resource, "delete")
        current = _document(resource, key)
        _delete(resource, key)
        return 200, current
    raise Problem(405, "Use GET, PUT, PATCH or DELETE.")


def _interface_set(document: dict[str, Any], name: str, value: dict[str, Any] | None) -> dict[str, Any]:
    """The host document with one interface set (or removed); `default` and its twin (same hwaddr) move together."""
    interfaces = dict(document.get("interface") or {})
    twin = importer.default_twin(interfaces)
    names = {name}
    if twin and name in ("default", twin):
        names |= {"default", twin}
    for each in names:
        if value is None:
            interfaces.pop(each, None)
        else:
            interfaces[each] = value
    return {**document, "interface": interfaces}


def _parts(request: HttpRequest, resource: Resource, key: str, field: str, dir_name: str) -> tuple[int, Any]:
    """A collection inside a document: a host's interfaces, an image's versions."""
    _authorize(request, resource, "view")
    parts = _document(resource, key).get(field) or {}
    if request.GET.get("table") == "true":
        return 200, [{**values, dir_name: name} for name, values in parts.items()]
    return 200, parts


def _part(
    request: HttpRequest,
    *,
    path: str,
    current: dict[str, Any] | None,
    schema: str,
    store: Callable[[dict[str, Any]], dict[str, Any]],
    remove: Callable[[], None],
) -> tuple[int, Any]:
    """GET, PUT, PATCH or DELETE one part of a document; `store` writes it and returns it as stored."""
    if request.method == "PUT":
        value = _body(request)
    elif current is None:
        raise Problem(404, f"{path}: not found")
    elif request.method == "GET":
        return 200, current
    elif request.method == "PATCH":
        value = _patch(current, _body(request), path)
    elif request.method == "DELETE":
        remove()
        return 200, current
    else:
        raise Problem(405, "Use GET, PUT, PATCH or DELETE.")
    validate(schema, value, path)
    return 200, store(value)


@_answer
def host_interfaces(request: HttpRequest, fqdn: str) -> tuple[int, Any]:
    """`GET /api/v1/hosts/<fqdn>/interfaces`."""
    return _parts(request, RESOURCES["hosts"], fqdn, "interface", "interface")


@_answer
def host_interface(request: HttpRequest, fqdn: str, name: str) -> tuple[int, Any]:
    """`GET|PUT|PATCH|DELETE /api/v1/hosts/<fqdn>/interfaces/<ifname>` (`default` is the primary NIC)."""
    hosts = RESOURCES["hosts"]
    _authorize(request, hosts, "view" if request.method == "GET" else "change")
    document = _document(hosts, fqdn)

    def store(value: dict[str, Any]) -> dict[str, Any]:
        _put(hosts, fqdn, _interface_set(document, name, value))
        return dict(_document(hosts, fqdn)["interface"][name])

    return _part(
        request,
        path=f"/host/{fqdn}/interface/{name}",
        current=(document.get("interface") or {}).get(name),
        schema="interface",
        store=store,
        remove=lambda: _put(hosts, fqdn, _interface_set(document, name, None)),
    )


@_answer
def image_versions(request: HttpRequest, image: str) -> tuple[int, Any]:
    """`GET /api/v1/images/<name>/versions`."""
    return _parts(request, RESOURCES["images"], image, "versions", "version")


@_answer
def image_version(request: HttpRequest, image: str, version: str) -> tuple[int, Any]:
    """`GET|PUT|PATCH|DELETE /api/v1/images/<name>/versions/<version>`."""
    images = RESOURCES["images"]
    path = f"/image/{image}/versions/{version}"
    _authorize(request, images, "view" if request.method == "GET" else "change")
    current = (_document(images, image).get("versions") or {}).get(version)
    stored = image_list().get(name=image)

    def store(value: dict[str, Any]) -> dict[str, Any]:
        _store(lambda: importer.version_put(stored, version, value, path), path)
        return dict(_document(images, image)["versions"][version])

    return _part(
        request,
        path=path,
        current=current,
        schema="image_version",
        store=store,
        remove=lambda: _store(
            lambda: image_services.image_version_delete(version=stored.versions.get(version=version)), path
        ),
    )


def schema(request: HttpRequest, name: str) -> JsonResponse:
    """`/schemas/<name>.json`: the JSON Schema (draft-04) PUT and PATCH bodies are checked against."""
    if name not in SCHEMAS:
        return JsonResponse([f"/schemas/{name}.json: not found"], status=404, safe=False)
    return JsonResponse(SCHEMAS[name], json_dumps_params={"indent": 2})

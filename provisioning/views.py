"""Boot endpoints: what a booting host and its installer talk to. Interfaces only: parse, call, render.

A booting host never gets a 4xx or 5xx from the iPXE endpoints: whatever goes wrong, it gets a valid script that
says what is wrong and boots from the local disk. The installer's config and events endpoints answer 403 to a
token that is unknown, expired or whose host left build mode.
"""

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import wraps
from typing import IO, Any
from urllib.parse import parse_qsl

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.signing import BadSignature, TimestampSigner
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe

from dock2box.actors import acting_as
from dock2box.jsonbody import parse_json
from dock2box.validators import normalise_mac
from provisioning import bootscripts, selectors, services
from provisioning.bootscripts import PICK_MAX_AGE, PICK_SALT
from provisioning.catalogue import catalogue_get
from provisioning.configs import host_config_render
from provisioning.metrics import BOOT_REQUESTS
from provisioning.rendering import ipxe
from provisioning.resolve import host_settings, install_problem

logger = logging.getLogger("dock2box.boot")
_DETAIL_RE = re.compile(r"^[A-Za-z0-9 ._:/+-]{1,100}\Z")
MAX_EVENT_BODY = 64 * 1024


def portal_url(request: HttpRequest) -> str:
    """The portal's absolute base URL: DOCK2BOX_PUBLIC_URL, else what the request was addressed to."""
    return django_settings.DOCK2BOX_PUBLIC_URL or f"{request.scheme}://{request.get_host()}"


def _script(text: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def never_fails(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Whatever happens inside, a booting host gets a valid script (and the error goes to the log)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Exception:
            BOOT_REQUESTS.labels("error").inc()
            logger.exception("boot request failed: %s", request.get_full_path()[:300])
            return _script(ipxe.notice_script(message="the portal had an internal error; see its log"))

    return wrapper


def _address(value: str | None) -> str:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return ""


def _detail(value: str | None) -> str:
    """A free-text identity value (serial, uuid, asset) kept only when it is plain."""
    return value if value and _DETAIL_RE.match(value) else ""


def _boot_request(query: Mapping[str, str], mac: str, ip_param: str = "ip") -> ipxe.BootRequest:
    platform = query.get("platform", "")
    return ipxe.BootRequest(
        mac=mac,
        ip=_address(query.get(ip_param)),
        netmask=_address(query.get("netmask")),
        gateway=_address(query.get("gateway")),
        platform=platform if platform in ("pcbios", "efi") else "",
    )


@require_safe
@never_fails
def boot_ipxe(request: HttpRequest) -> HttpResponse:
    """`/boot.ipxe`: the generic first script, chaining to the per-host one. HEAD too: a UEFI firmware's HTTP boot
    asks HEAD of the boot file before it fetches it."""
    logger.info("boot script=boot.ipxe client=%s", request.META.get("REMOTE_ADDR", "-"))
    return _script(ipxe.boot_script(portal=portal_url(request)))


def _host_menu(request: HttpRequest, raw_mac: str | None, ip_param: str) -> HttpResponse:
    platform = request.GET.get("platform", "")
    try:
        mac = normalise_mac(raw_mac or "")
    except ValidationError:
        shown = re.sub(r"[^0-9A-Za-z:.-]", "?", (raw_mac or "")[:40])
        BOOT_REQUESTS.labels("error").inc()
        logger.info("boot mac=%s outcome=error reason=bad-mac", shown or "-")
        reason = f"'{shown}' is not a MAC address" if raw_mac else "the request named no MAC address"
        return _script(ipxe.notice_script(message=reason, platform=platform if platform in ("pcbios", "efi") else ""))
    details = {name: _detail(request.GET.get(name)) for name in ("uuid", "serial", "asset", "buildarch")}
    boot = _boot_request(request.GET, mac, ip_param)
    return _script(bootscripts.host_script(portal=portal_url(request), boot=boot, now=timezone.now(), details=details))


@require_GET
@never_fails
def host_ipxe(request: HttpRequest) -> HttpResponse:
    """`/ipxe?mac=...`: the per-host menu."""
    with acting_as("boot path"):
        return _host_menu(request, request.GET.get("mac"), "ip")


@require_GET
@never_fails
def pxe_compat(request: HttpRequest, mac: str) -> HttpResponse:
    """`/pxe/<mac>?ipv4=&netmask=&gateway=&serial=`: the URL the original's embedded iPXE script chains to."""
    with acting_as("boot path"):
        return _host_menu(request, mac, "ipv4")


@require_GET
@never_fails
def install_chosen(request: HttpRequest) -> HttpResponse:
    """`/ipxe/install?mac=&version=`: a version picked by hand in the menu."""
    platform = request.GET.get("platform", "")
    platform = platform if platform in ("pcbios", "efi") else ""
    try:
        mac = normalise_mac(request.GET.get("mac", ""))
    except ValidationError:
        return _script(ipxe.notice_script(message="the install request named no valid MAC", platform=platform))
    if not django_settings.DOCK2BOX_MENU_INSTALL:
        return _script(ipxe.notice_script(message="installing from the menu is off", platform=platform))
    image_name, version_name = request.GET.get("image", ""), request.GET.get("version", "")
    signed = f"{mac}|{image_name}|{version_name}:{request.GET.get('stamp', '')}:{request.GET.get('sig', '')}"
    try:
        TimestampSigner(salt=PICK_SALT).unsign(signed, max_age=PICK_MAX_AGE)
    except BadSignature:
        return _script(
            ipxe.notice_script(message="this menu is old or not the portal's; boot again", platform=platform)
        )
    catalogue = catalogue_get()
    image = catalogue.images.get(image_name)
    versions = image.version_list if image is not None else []  # type: ignore[attr-defined]
    version = next((item for item in versions if item.version == version_name), None)
    lookup = selectors.interface_for_boot(mac=mac)
    if lookup is None or version is None:
        message = "register this MAC as a host before installing it" if lookup is None else "that version is gone"
        return _script(ipxe.notice_script(message=message, platform=platform))
    interface, portal = lookup.interface, portal_url(request)
    settings = host_settings(host=interface.host, interface=interface, catalogue=catalogue, version_id=version.pk)
    problem = install_problem(settings)
    if problem:
        return _script(ipxe.notice_script(message=f"cannot install: {problem}", platform=platform))
    with acting_as(f"boot menu ({client_address(request)})"):
        build = services.build_install_chosen(host=interface.host, version_id=version.pk)
    logger.info("boot mac=%s host=%s outcome=build version=%s", mac, interface.host.fqdn, settings.image_label)
    return _script(
        ipxe.install_script(install=bootscripts.install_lines(portal, settings, str(build.token)), platform=platform)
    )


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind a proxy named in DOCK2BOX_TRUSTED_PROXIES the nearest address in
    X-Forwarded-For that is not one of them."""
    address = request.META.get("REMOTE_ADDR", "")
    trusted = django_settings.DOCK2BOX_TRUSTED_PROXIES
    if address in trusted:
        for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            hop = _address(hop)
            if hop and hop not in trusted:
                return hop
    return address


def _build_or_refusal(request: HttpRequest, token: str, *, fetch: bool) -> selectors.InstallerBuild | JsonResponse:
    try:
        return services.build_for_installer(
            token=token, now=timezone.now(), client=client_address(request), fetch=fetch
        )
    except services.InstallerRefused as refused:
        return JsonResponse({"detail": str(refused)}, status=403)


@require_GET
def host_config(request: HttpRequest, token: str) -> HttpResponse:
    """`/config/<token>?format=env|json|kickstart|preseed|cloud-init`: the host's config, for its installer."""
    found = _build_or_refusal(request, token, fetch=True)
    if isinstance(found, JsonResponse):
        return found
    build = found.build
    services.build_version_pin(build=build)
    fmt = request.GET.get("format", "env")
    rendered = host_config_render(
        host=build.host, build=build, fmt=fmt, portal=portal_url(request), interfaces=found.interfaces
    )
    response = rendered.response()
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_POST
def build_events(request: HttpRequest, token: str) -> JsonResponse:
    """`POST /config/<token>/events` `{"stage", "progress", "message"}`: the installer's progress."""
    if len(request.body) > MAX_EVENT_BODY:
        return JsonResponse({"detail": f"Body over {MAX_EVENT_BODY} bytes."}, status=413)
    found = _build_or_refusal(request, token, fetch=False)
    if isinstance(found, JsonResponse):
        return found
    build = found.build
    try:
        payload = parse_json(request.body or b"{}")
    except ValueError as error:
        return JsonResponse({"detail": f"The body is not JSON: {error}"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"detail": 'Send an object: {"stage": ..., "progress": ..., "message": ...}.'}, status=400)
    progress = payload.get("progress")
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, int)):
        return JsonResponse({"progress": ["Send a whole number from 0 to 100."]}, status=400)
    message = payload.get("message", "")
    try:
        with acting_as(f"installer ({build.client_address})"):
            event = services.build_event_record(
                build=build,
                stage=str(payload.get("stage", "")),
                progress=progress,
                message=str(message),
                now=timezone.now(),
            )
    except ValidationError as error:
        return JsonResponse(error.message_dict, status=400)
    except services.EventLimitReached as error:
        return JsonResponse({"detail": str(error)}, status=429)
    return JsonResponse({"stage": event.stage, "progress": event.progress, "time": event.time.isoformat()}, status=201)


_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64})?\Z")
_MACHINE_ID_RE = re.compile(r"^[0-9a-f]{0,32}\Z")
_KERNEL_RE = re.compile(r"^[A-Za-z0-9._+~-]{0,100}\Z")


@csrf_exempt
@require_POST
def booted(request: HttpRequest, token: str) -> JsonResponse:
    """`POST /booted/<credential>` `{"digest", "machine_id", "kernel", "uptime"}`: an installed system's first-boot
    report, once per install (the credential is used up)."""
    if len(request.body) > MAX_EVENT_BODY:
        return JsonResponse({"detail": f"Body over {MAX_EVENT_BODY} bytes."}, status=413)
    try:
        payload = parse_json(request.body or b"{}")
    except ValueError as error:
        return JsonResponse({"detail": f"The body is not JSON: {error}"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse(
            {"detail": 'Send an object: {"digest": ..., "machine_id": ..., "kernel": ...}.'}, status=400
        )
    checks = {"digest": _DIGEST_RE, "machine_id": _MACHINE_ID_RE, "kernel": _KERNEL_RE}
    errors = {
        name: [f"Does not match {pattern.pattern}."]
        for name, pattern in checks.items()
        if not isinstance(payload.get(name, ""), str) or not pattern.match(payload.get(name, ""))
    }
    uptime = payload.get("uptime", 0)
    if isinstance(uptime, bool) or not isinstance(uptime, int | float) or not 0 <= uptime < 10**9:
        errors["uptime"] = ["Send the seconds since the system started, a number."]
    if errors:
        return JsonResponse(errors, status=400)
    detail = f"kernel {payload.get('kernel') or '?'}, up {uptime:.0f} s, machine-id {payload.get('machine_id') or '?'}"
    try:
        with acting_as(f"installed system ({client_address(request)})"):
            build = services.build_boot_report(
                report_token=token, digest=payload.get("digest", ""), detail=detail, now=timezone.now()
            )
    except services.BootReportRefused as refused:
        return JsonResponse({"detail": str(refused)}, status=403)
    return JsonResponse({"build": build.pk, "booted": build.booted.isoformat() if build.booted else None}, status=201)


_RANGE_RE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})\Z")  # no file is 10^18 bytes: longer numbers are not a range


@require_GET
def stored_file(request: HttpRequest, area: str, image: str, version: str, kind: str) -> HttpResponse:
    """`/files/boot/<image>/<version>/{kernel,initrd}` and `/files/images/<image>/<version>/file`: stored files of
    image versions, with `Range` support."""
    stored = selectors.stored_file_for(area=area, image=image, version=version, kind=kind)
    if stored is None:
        return HttpResponse("No such file.\n", status=404, content_type="text/plain")
    if (
        django_settings.DOCK2BOX_FILES_ACCEL_REDIRECT
    ):  # nginx sends the file (and answers Range) from an internal location
        response = HttpResponse(content_type="application/octet-stream")
        response["X-Accel-Redirect"] = django_settings.DOCK2BOX_FILES_ACCEL_REDIRECT.rstrip("/") + "/" + stored.name
        return response
    size = stored.size
    start, end = 0, size - 1
    header = request.headers.get("Range", "")
    match = _RANGE_RE.match(header.replace(" ", "")) if header else None
    if header and (match is None or match.groups() == ("", "")):
        match = None  # not a single byte range: answer with the whole file, as RFC 9110 allows
    elif match:
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
    handle = stored.open("rb")
    handle.seek(start)
    response = StreamingHttpResponse(_read_span(handle, end - start + 1), content_type="application/octet-stream")
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    if match:
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response


def _read_span(handle: IO[bytes], length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    try:
        while length > 0:
            data = handle.read(min(chunk, length))
            if not data:
                break
            length -= len(data)
            yield data
    finally:
        handle.close()


class BootFront:
    """The boot path's front door, in front of Django (`dock2box/wsgi.py`): `GET /ipxe` answered from a good cache
    entry and `GET /boot.ipxe`, without Django's request handling (URL resolution, middleware, request and response
    objects), which costs as much as the cached answer itself. Only where nothing is in doubt: `DOCK2BOX_PUBLIC_URL`
    set (no Host header makes the portal's address), plain HTTP, a Host Django accepts, no body, a valid MAC, a good
    entry. Everything else, and any error, goes to Django, whose views answer it the same way (the same functions:
    `bootscripts.cached_script` first there too). The headers are the ones Django's stack gives a script
    (`SCRIPT_HEADERS`, checked against it by the tests)."""

    def __init__(self, django: Callable[..., Iterable[bytes]]) -> None:
        self.django = django

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        script = None
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in ("/ipxe", "/boot.ipxe"):
            try:
                script = self._script(environ)
            except Exception:  # Django answers it (and logs what goes wrong there)
                logger.debug("the boot front passed a request to Django", exc_info=True)
        if script is None:
            return self.django(environ, start_response)
        body = script.encode()
        start_response("200 OK", [*SCRIPT_HEADERS, ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _script(environ: dict[str, Any]) -> str | None:
        portal = django_settings.DOCK2BOX_PUBLIC_URL
        plain = environ.get("wsgi.url_scheme") == "http" and environ.get("CONTENT_LENGTH", "0") in ("", "0")
        if not portal or not plain:
            return None
        if django_settings.USE_X_FORWARDED_HOST or django_settings.SECURE_PROXY_SSL_HEADER:
            return None  # what Django makes of the request's address and scheme: Django's to say
        if django_settings.SECURE_SSL_REDIRECT:
            return None
        domain, _ = split_domain_port(environ.get("HTTP_HOST", ""))
        if not domain or not validate_host(domain, django_settings.ALLOWED_HOSTS):
            return None
        if environ["PATH_INFO"] == "/boot.ipxe":
            logger.info("boot script=boot.ipxe client=%s", environ.get("REMOTE_ADDR", "-"))
            return ipxe.boot_script(portal=portal)
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            mac = normalise_mac(query.get("mac", ""))
        except ValidationError:
            return None
        with acting_as("boot path"):
            return bootscripts.cached_script(portal=portal, boot=_boot_request(query, mac), now=timezone.now())


SCRIPT_HEADERS = [
    (name, value)
    for name, value in [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("X-Frame-Options", django_settings.X_FRAME_OPTIONS),
        ("X-Content-Type-Options", "nosniff" if django_settings.SECURE_CONTENT_TYPE_NOSNIFF else None),
        ("Referrer-Policy", django_settings.SECURE_REFERRER_POLICY),
        ("Cross-Origin-Opener-Policy", django_settings.SECURE_CROSS_ORIGIN_OPENER_POLICY),
    ]
    if isinstance(value, str)
]

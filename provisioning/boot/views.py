"""Boot endpoints: what a booting host asks for. Interfaces only: parse, call, render.

A booting host never gets a 4xx or 5xx from the iPXE endpoints: whatever goes wrong, it gets a valid script that
says what is wrong and boots from the local disk.
"""

import logging
import re
from collections.abc import Callable, Mapping
from functools import wraps
from urllib.parse import quote, urlencode

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.http import require_GET, require_safe

from dock2box.actors import acting_as
from dock2box.http import client_address, ip_or_empty, portal_url
from dock2box.validators import normalise_mac
from provisioning.boot import scripts as bootscripts
from provisioning.boot.binaries import boot_binaries
from provisioning.boot.menu import BootRequest, path_loader
from provisioning.boot.render import RENDERERS, ipxe
from provisioning.builds.selectors import interface_for_boot
from provisioning.builds.services import build_install_chosen
from provisioning.catalogue.resolve import host_settings, install_problem
from provisioning.catalogue.selectors import catalogue_get
from provisioning.metrics import BOOT_REQUESTS
from provisioning.storage.views import ranged_file

logger = logging.getLogger("dock2box.boot")


_DETAIL_RE = re.compile(r"^[A-Za-z0-9 ._:/+-]{1,100}\Z")


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
            message = "the portal had an internal error; see its log"
            again, render = _same_request(request), RENDERERS[path_loader(request.path)]
            return _script(render.ask_again(message=message, url=again) if again else render.notice(message=message))

    wrapper.answers_scripts = True  # type: ignore[attr-defined]  # (dock2box.middleware.answers_scripts)
    return wrapper


_PATH_RE = re.compile(r"^/[A-Za-z0-9/._:-]{0,200}\Z")


def _same_request(request: HttpRequest) -> str:
    """The request's own URL for the host to ask again, or "" when its path is not plain: the query re-encoded, so
    nothing in it is iPXE syntax (`${`, spaces, newlines all percent-encoded)."""
    if not _PATH_RE.match(request.path):
        return ""
    try:
        portal = portal_url(request)
    except Exception:  # (the Host header itself may be what failed)
        return ""
    query = urlencode(list(request.GET.items()), quote_via=quote, safe="")
    return f"{portal}{request.path}?{query}" if query else f"{portal}{request.path}"


def _detail(value: str | None) -> str:
    """A free-text identity value (serial, uuid, asset) kept only when it is plain."""
    return value if value and _DETAIL_RE.match(value) else ""


def boot_request(
    query: Mapping[str, str], mac: str, ip_param: str = "ip", client: str = "", loader: str = "ipxe"
) -> BootRequest:
    platform = query.get("platform", "")
    return BootRequest(
        mac=mac,
        ip=ip_or_empty(query.get(ip_param)),
        netmask=ip_or_empty(query.get("netmask")),
        gateway=ip_or_empty(query.get("gateway")),
        platform="efi" if loader == "grub" else (platform if platform in ("pcbios", "efi") else ""),
        client=client,
        loader=loader,
    )


@require_safe
@never_fails
def boot_ipxe(request: HttpRequest) -> HttpResponse:
    """`/boot.ipxe`: the generic first script, chaining to the per-host one. HEAD too: a UEFI firmware's HTTP boot
    asks HEAD of the boot file before it fetches it."""
    logger.info("boot script=boot.ipxe client=%s", request.META.get("REMOTE_ADDR", "-"))
    return _script(ipxe.boot_script(portal=portal_url(request)))


def host_menu(request: HttpRequest, raw_mac: str | None, ip_param: str) -> HttpResponse:
    platform, loader = request.GET.get("platform", ""), path_loader(request.path)
    try:
        mac = normalise_mac(raw_mac or "")
    except ValidationError:
        shown = re.sub(r"[^0-9A-Za-z:.-]", "?", (raw_mac or "")[:40])
        BOOT_REQUESTS.labels("error").inc()
        logger.info("boot mac=%s outcome=error reason=bad-mac", shown or "-")
        reason = f"'{shown}' is not a MAC address" if raw_mac else "the request named no MAC address"
        platform = platform if platform in ("pcbios", "efi") else ""
        return _script(RENDERERS[loader].notice(message=reason, platform=platform))
    details = {name: _detail(request.GET.get(name)) for name in ("uuid", "serial", "asset", "buildarch")}
    boot = boot_request(request.GET, mac, ip_param, client_address(request), loader)
    return _script(bootscripts.host_script(portal=portal_url(request), boot=boot, now=timezone.now(), details=details))


@require_GET
@never_fails
def host_ipxe(request: HttpRequest) -> HttpResponse:
    """`/ipxe?mac=...` and `/grub?mac=...`: the per-host menu, for iPXE or for GRUB."""
    with acting_as("boot path"):
        return host_menu(request, request.GET.get("mac"), "ip")


@require_GET
@never_fails
def install_chosen(request: HttpRequest) -> HttpResponse:
    """`/ipxe/install?mac=&version=` (and `/grub/install`): a version picked by hand in the menu."""
    platform, loader = request.GET.get("platform", ""), path_loader(request.path)
    platform = platform if platform in ("pcbios", "efi") else ""
    notice = RENDERERS[loader].notice
    try:
        mac = normalise_mac(request.GET.get("mac", ""))
    except ValidationError:
        return _script(notice(message="the install request named no valid MAC", platform=platform))
    if not django_settings.DOCK2BOX_MENU_INSTALL:
        return _script(notice(message="installing from the menu is off", platform=platform))
    image_name, version_name = request.GET.get("image", ""), request.GET.get("version", "")
    lookup = interface_for_boot(mac=mac)
    boot = BootRequest(mac=mac, platform=platform, client=client_address(request), loader=loader)
    signed = f"{request.GET.get('stamp', '')}:{request.GET.get('sig', '')}"
    build_id = lookup.build_id if lookup else None
    if not bootscripts.pick_granted(
        boot=boot, image=image_name, version=version_name, build_id=build_id, signed=signed
    ):
        message = "this menu is old, not the portal's, or not this machine's; boot again"
        return _script(notice(message=message, platform=platform))
    catalogue = catalogue_get()
    image = catalogue.images.get(image_name)
    versions = image.version_list if image is not None else []  # type: ignore[attr-defined]
    version = next((item for item in versions if item.version == version_name), None)
    if lookup is None or version is None:
        message = "register this MAC as a host before installing it" if lookup is None else "that version is gone"
        return _script(notice(message=message, platform=platform))
    interface, portal = lookup.interface, portal_url(request)
    settings = host_settings(host=interface.host, interface=interface, catalogue=catalogue, version_id=version.pk)
    problem = install_problem(settings)
    if problem:
        return _script(notice(message=f"cannot install: {problem}", platform=platform))
    try:
        with acting_as(f"boot menu ({client_address(request)})"):
            build = build_install_chosen(host=interface.host, version_id=version.pk)
    except ValidationError as error:
        return _script(notice(message=f"cannot install: {error.messages[0]}", platform=platform))
    logger.info("boot mac=%s host=%s outcome=build version=%s", mac, interface.host.fqdn, settings.image_label)
    install = bootscripts.install_entry(portal, settings, str(build.token), mac)
    return _script(RENDERERS[loader].install(install=install, platform=platform))


@require_safe
def boot_binary(request: HttpRequest, name: str) -> HttpResponseBase:
    """`/boot/<name>`: a first stage by its fixed name (`provisioning.boot.binaries`), for UEFI HTTP boot; HEAD too,
    and ranges."""
    path = boot_binaries().get(name)
    if path is None or not path.is_file():
        return HttpResponse("No such boot file.\n", status=404, content_type="text/plain")
    stat = path.stat()
    logger.info("boot file=%s client=%s", name, client_address(request))
    return ranged_file(request, size=stat.st_size, modified=stat.st_mtime, opener=lambda: path.open("rb"))

"""The boot path's front door: the WSGI application in front of Django (settings.WSGI_FRONTS)."""

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.http.request import split_domain_port, validate_host
from django.utils import timezone

from dock2box.actors import acting_as
from dock2box.validators import normalise_mac
from provisioning.boot import scripts as bootscripts
from provisioning.boot.menu import path_loader
from provisioning.boot.render import ipxe
from provisioning.boot.views import boot_request, logger


class BootFront:
    """The boot path's front door, in front of Django (`dock2box/wsgi.py`): `GET /ipxe` and `GET /grub` answered from a
    good cache entry, and `GET /boot.ipxe`, without Django's request handling (URL resolution, middleware, request and
    response objects), which costs as much as the cached answer itself. Only where nothing is in doubt:
    `DOCK2BOX_PUBLIC_URL` set (no Host header makes the portal's address), plain HTTP, a Host Django accepts, no body, a
    valid MAC, a good entry. Everything else, and any error, goes to Django, whose views answer it the same way (the
    same functions: `bootscripts.cached_script` first there too). The headers are the ones Django's stack gives a script
    (`SCRIPT_HEADERS`, checked against it by the tests)."""

    def __init__(self, django: Callable[..., Iterable[bytes]]) -> None:
        self.django = django

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        script = None
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") in ("/ipxe", "/grub", "/boot.ipxe"):
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
        if django_settings.SECURE_SSL_REDIRECT or django_settings.DOCK2BOX_MENU_INSTALL:
            return None  # (menus that offer installs are signed per machine: never from the cache)
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
        boot = boot_request(query, mac, loader=path_loader(environ["PATH_INFO"]))
        with acting_as("boot path"):
            return bootscripts.cached_script(portal=portal, boot=boot, now=timezone.now())


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

"""Request facts the apps share: the portal's public address, the client's address (behind trusted proxies)."""

import ipaddress

from django.conf import settings as django_settings
from django.http import HttpRequest


def portal_url(request: HttpRequest) -> str:
    """The portal's absolute base URL: DOCK2BOX_PUBLIC_URL, else what the request was addressed to."""
    return django_settings.DOCK2BOX_PUBLIC_URL or f"{request.scheme}://{request.get_host()}"


def ip_or_empty(value: str | None) -> str:
    """An address a request names (`ip=`, a hop of X-Forwarded-For), written the one way `ipaddress` writes it, or ""
    for anything else. An IPv6 address with a zone (`fe80::1%eth0`) is refused: the zone is free text (any byte but
    `%`, newlines too) and names a link of the client's, which means nothing to the portal."""
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return ""
    return "" if getattr(address, "scope_id", None) is not None else str(address)


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind a proxy named in DOCK2BOX_TRUSTED_PROXIES the nearest address in
    X-Forwarded-For that is not one of them."""
    address = request.META.get("REMOTE_ADDR", "")
    trusted = django_settings.DOCK2BOX_TRUSTED_PROXIES
    if address in trusted:
        for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            hop = ip_or_empty(hop)
            if hop and hop not in trusted:
                return hop
    return address

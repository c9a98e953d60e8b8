"""`/pxe/<mac>`: the URL the original's embedded iPXE script chains to, answered like `/ipxe`."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from dock2box.actors import acting_as
from provisioning.boot.views import host_menu, never_fails


@require_GET
@never_fails
def pxe_compat(request: HttpRequest, mac: str) -> HttpResponse:
    """`/pxe/<mac>?ipv4=&netmask=&gateway=&serial=`: the URL the original's embedded iPXE script chains to."""
    with acting_as("boot path"):
        return host_menu(request, mac, "ipv4")

"""Reads of the inventory, with related rows joined so lists cost the same few queries for any length."""

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Prefetch, QuerySet

from hosts.addressing import most_specific_subnet, usable_ranges
from hosts.choices import HostStatus
from hosts.models import Bmc, Host, Interface, Site, Subnet, boot_order

DEPLOYED, AWAITING, NOT_REPORTING = "deployed", "awaiting its first boot", "not reporting"


def site_list() -> QuerySet[Site]:
    """All sites with their default image."""
    return Site.objects.select_related("image")


def site_list_counted() -> QuerySet[Site]:
    """All sites with their default image and how many subnets and hosts each has."""
    return site_list().annotate(subnet_count=Count("subnets", distinct=True), host_count=Count("hosts", distinct=True))


def subnet_list() -> QuerySet[Subnet]:
    """All subnets with their site."""
    return Subnet.objects.select_related("site")


def subnet_list_counted() -> QuerySet[Subnet]:
    """All subnets with their site and how many interfaces each holds."""
    return subnet_list().annotate(interface_count=Count("interfaces"))


def interface_list() -> QuerySet[Interface]:
    """All interfaces with their host and subnet."""
    return Interface.objects.select_related("host", "subnet")


def bmc_list() -> QuerySet[Bmc]:
    """All BMCs with their host."""
    return Bmc.objects.select_related("host")


def host_list() -> QuerySet[Host]:
    """All hosts with site, image, version and interfaces (and their subnets) loaded."""
    return Host.objects.select_related("site", "image", "image_version").prefetch_related(
        Prefetch("interfaces", queryset=Interface.objects.select_related("subnet"))
    )


def interface_boot(interfaces: Iterable[Interface]) -> Interface | None:
    """The boot NIC among a host's interfaces: the first in `boot_order`, the primary one (the services keep one)."""
    return min(interfaces, key=boot_order, default=None)


def subnet_for_address(
    *, address: object, site_id: int | None = None, subnets: Iterable[Subnet] | None = None
) -> Subnet | None:
    """The subnet holding an address: the most specific one, the given site's first. The one rule for it, used by an
    interface's validation, the boot catalogue (with its cached `subnets`) and registering a discovered host."""
    known = Subnet.objects.select_related("site") if subnets is None else subnets
    return most_specific_subnet(address=address, subnets=known, site_id=site_id)


def subnet_free_addresses(*, subnet: Subnet) -> Iterator[str]:
    """Addresses of the subnet that no interface uses, outside its reserved ranges and gateway, in order
    (`hosts.addressing.usable_ranges`)."""
    network = subnet.ip_network
    if network is None:
        return
    used = Interface.objects.filter(subnet=subnet, ip__isnull=False).values_list("ip", flat=True)
    address_type = type(network.network_address)
    for low, high in usable_ranges(
        network, gateway=subnet.gateway, reserved=subnet.reserved_ranges(), taken=[ip for ip in used if ip]
    ):
        for candidate in range(low, high + 1):
            yield str(address_type(candidate))


def subnet_next_free_ip(*, subnet: Subnet) -> str | None:
    """The lowest free address of the subnet, or None when it is full."""
    return next(subnet_free_addresses(subnet=subnet), None)


def host_deployment(*, host: Host, now: datetime) -> str:
    """How the host's installed system is doing: `deployed` (it reported its first boot), `awaiting its first boot`,
    `not reporting` (no report DOCK2BOX_FIRST_BOOT_TIMEOUT seconds after its install ended), or "" (no install ended
    since its last build began)."""
    if host.status == HostStatus.DEPLOYED:
        return DEPLOYED
    if host.status not in (HostStatus.INSTALLED, HostStatus.UNCONFIRMED) or host.installed is None:
        return ""
    overdue = now - host.installed >= timedelta(seconds=settings.DOCK2BOX_FIRST_BOOT_TIMEOUT)
    return NOT_REPORTING if overdue else AWAITING

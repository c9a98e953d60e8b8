"""Reads of the inventory, with related rows joined so lists cost the same few queries for any length."""

import ipaddress
from collections.abc import Iterator

from django.db.models import Prefetch, QuerySet

from hosts.models import Host, Interface, Site, Subnet


def site_list() -> QuerySet[Site]:
    """All sites with their default image."""
    return Site.objects.select_related("image")


def subnet_list() -> QuerySet[Subnet]:
    """All subnets with their site."""
    return Subnet.objects.select_related("site")


def interface_list() -> QuerySet[Interface]:
    """All interfaces with their host and subnet."""
    return Interface.objects.select_related("host", "subnet")


def host_list() -> QuerySet[Host]:
    """All hosts with site, image, version and interfaces (and their subnets) loaded."""
    return Host.objects.select_related("site", "image", "image_version").prefetch_related(
        Prefetch("interfaces", queryset=Interface.objects.select_related("subnet"))
    )


def subnet_free_addresses(*, subnet: Subnet) -> Iterator[str]:
    """Addresses of the subnet that no interface uses, outside its reserved ranges and gateway, in order."""
    network = subnet.ip_network
    if network is None:
        return
    used = {
        ipaddress.ip_address(ip)
        for ip in Interface.objects.filter(subnet=subnet, ip__isnull=False).values_list("ip", flat=True)
        if ip
    }
    if subnet.gateway:
        used.add(ipaddress.ip_address(subnet.gateway))
    reserved = subnet.reserved_ranges()
    for address in network.hosts():
        if address in used or any(int(start) <= int(address) <= int(end) for start, end in reserved):
            continue
        yield str(address)


def subnet_next_free_ip(*, subnet: Subnet) -> str | None:
    """The lowest free address of the subnet, or None when it is full."""
    return next(subnet_free_addresses(subnet=subnet), None)

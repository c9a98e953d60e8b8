"""Reads for the original's documents: the keys of a collection in its layout."""

from hosts.addressing import subnet_key
from hosts.models import Host, Interface, Site, Subnet
from images.models import Image


def document_keys(*, kind: str) -> list[str]:
    """The keys of a collection in the original's layout (`host`, `image`, `hwaddr`, `subnets`, `sites`), sorted."""
    if kind == "host":
        return list(Host.objects.order_by("fqdn").values_list("fqdn", flat=True))
    if kind == "image":
        return list(Image.objects.order_by("name").values_list("name", flat=True))
    if kind == "hwaddr":
        return list(Interface.objects.order_by("mac").values_list("mac", flat=True))
    if kind == "subnets":
        return [subnet_key(network) for network in Subnet.objects.order_by("network").values_list("network", flat=True)]
    return list(Site.objects.order_by("name").values_list("name", flat=True))

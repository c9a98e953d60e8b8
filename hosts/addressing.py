"""Addressing rules that need no database: a subnet's keys in the original's layout, its reserved ranges, which of
its addresses a host may hold, the most specific subnet holding an address."""

import ipaddress
import re
from collections.abc import Iterable
from typing import Protocol, TypeVar

from django.core.exceptions import ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Network(Protocol):
    """What the addressing rules read of a subnet (`hosts.models.Subnet`)."""

    site_id: int

    @property
    def ip_network(self) -> IPNetwork | None: ...


N = TypeVar("N", bound=Network)


def is_network_or_broadcast(address: IPAddress, network: IPNetwork) -> bool:
    """An IPv4 network's own address or its broadcast address (not on /31 and /32, where every address is a host's):
    never a host's or a gateway's."""
    return (
        network.version == 4
        and network.prefixlen < 31
        and address in (network.network_address, network.broadcast_address)
    )


def subnet_key(network: str) -> str:
    """A subnet's key in the original's layout (etcd, /api/v1): `10.0.0.0/24` → `10.0.0.0-24`."""
    return network.replace("/", "-")


def subnet_network(key: str) -> str:
    """The network a subnet key names: `10.0.0.0-24` → `10.0.0.0/24` (`2001:db8::-64` → `2001:db8::/64`)."""
    network, _, prefixlen = key.rpartition("-")
    return f"{network}/{prefixlen}"


def parse_ranges(text: str, network: IPNetwork) -> list[tuple[IPAddress, IPAddress]]:
    """`10.0.0.1-10.0.0.20, 10.0.0.250` → [(start, end), ...] inside `network`, or ValidationError."""
    ranges = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        start_text, _, end_text = item.partition("-")
        try:
            start = ipaddress.ip_address(start_text)
            end = ipaddress.ip_address(end_text or start_text)
        except ValueError:
            raise ValidationError(
                "'%(item)s' is not an address or a range (write 10.0.0.1-10.0.0.20).", params={"item": item}
            ) from None
        if start not in network or end not in network or int(end) < int(start):
            raise ValidationError(
                "'%(item)s' is not a range inside %(network)s.", params={"item": item, "network": network}
            )
        ranges.append((start, end))
    return ranges


def most_specific_subnet(*, address: object, subnets: Iterable[N], site_id: int | None = None) -> N | None:
    """The subnet holding an address among `subnets`: the most specific one, the given site's first; None for
    anything that is not an address. The one rule for it (`hosts.selectors.subnet_for_address` reads the subnets)."""
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return None
    holding = [(subnet, network) for subnet in subnets if (network := subnet.ip_network) is not None and ip in network]
    best = min(holding, key=lambda pair: (pair[0].site_id != site_id, -pair[1].prefixlen), default=None)
    return best[0] if best else None


def dns_servers(*sources: str) -> list[str]:
    """The DNS servers a host on a subnet gets: the first of `sources` that names any (the subnet's own, then its
    site's, then the host's site's), as a list. The one rule for the installer's config and the DHCP snippets."""
    chosen = next((text for text in sources if text and text.strip(",").strip()), "")
    return [server.strip() for server in chosen.split(",") if server.strip()]


def usable_ranges(
    network: IPNetwork,
    *,
    gateway: str | None,
    reserved: Iterable[tuple[IPAddress, IPAddress]],
    taken: Iterable[str] = (),
) -> list[tuple[int, int]]:
    """The addresses of `network` a host may hold, as contiguous (first, last) ranges of integers, in order: without
    the network and broadcast addresses (IPv4 above /31) or the Subnet-Router anycast address (IPv6 above /127), the
    gateway, the reserved ranges and the `taken` addresses. The one rule for free addresses and DHCP ranges; ranges
    are stepped over, not walked (a huge reserved IPv6 range costs nothing)."""
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.prefixlen < network.max_prefixlen - 1:
        first += 1
        last -= 1 if network.version == 4 else 0
    holes = sorted(
        [(int(start), int(end)) for start, end in reserved]
        + [(int(ipaddress.ip_address(ip)),) * 2 for ip in [gateway, *taken] if ip]
    )
    ranges, start = [], first
    for low, high in holes:
        if low > start:
            ranges.append((start, min(low - 1, last)))
        start = max(start, high + 1)
    if start <= last:
        ranges.append((start, last))
    return [(low, high) for low, high in ranges if low <= high]

"""Subnets: the networks of a site that interfaces take their addresses from."""

import ipaddress

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from dock2box.validators import (
    parse_address_list,
    parse_network,
    validate_address_list,
    validate_network,
    validate_safe_text,
)
from hosts.addressing import IPAddress, IPNetwork, is_network_or_broadcast, parse_ranges
from hosts.models.sites import Site


class Subnet(models.Model):
    """An IPv4 or IPv6 network of a site; interfaces take addresses from it.

    No two subnets overlap, in one site or across sites: the etcd mirror keys a subnet by its network alone
    (`/subnets/10.0.0.0-24`), so an address belongs to at most one subnet.
    """

    network = models.CharField(
        max_length=49, unique=True, validators=[validate_network], help_text="CIDR, e.g. 10.0.0.0/24."
    )
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="subnets")
    description = models.CharField(max_length=200, blank=True, validators=[validate_safe_text])
    gateway = models.GenericIPAddressField(null=True, blank=True)
    vlan = models.PositiveSmallIntegerField(
        "VLAN", null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(4094)]
    )
    dns_servers = models.CharField(
        "DNS servers",
        max_length=300,
        blank=True,
        validators=[validate_address_list],
        help_text="Comma-separated; empty means the site's.",
    )
    dhcp = models.BooleanField("DHCP", default=False, help_text="Hosts on this subnet get their address by DHCP.")
    reserved = models.CharField(
        "reserved ranges",
        max_length=500,
        blank=True,
        help_text="Addresses never handed out, e.g. 10.0.0.1-10.0.0.20, 10.0.0.250.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site__name", "network"]

    def __str__(self) -> str:
        return self.network

    @property
    def ip_network(self) -> IPNetwork | None:
        """The parsed network, or None while the field holds something invalid."""
        try:
            return parse_network(self.network)
        except ValidationError:
            return None

    @property
    def netmask(self) -> str:
        network = self.ip_network
        return str(network.netmask) if network else ""

    def reserved_ranges(self) -> list[tuple[IPAddress, IPAddress]]:
        network = self.ip_network
        return parse_ranges(self.reserved, network) if network and self.reserved else []

    def clean(self) -> None:
        network = self.ip_network
        if network is None:
            return
        self.network = str(network)
        errors: dict[str, str] = {}
        if self.gateway:
            gateway = ipaddress.ip_address(self.gateway)
            if gateway not in network:
                errors["gateway"] = f"{gateway} is outside {network}; pick an address inside it."
            elif is_network_or_broadcast(gateway, network):
                errors["gateway"] = f"{gateway} is the network or broadcast address of {network}."
        if self.dns_servers:
            self.dns_servers = ",".join(parse_address_list(self.dns_servers))
        try:
            self.reserved_ranges()
        except ValidationError as error:
            errors["reserved"] = error.messages[0]
        for other in Subnet.objects.exclude(pk=self.pk).select_related("site").only("network", "site__name"):
            other_network = other.ip_network
            if other_network and other_network.version == network.version and other_network.overlaps(network):
                errors["network"] = f"{network} overlaps {other_network}, a subnet of site {other.site.name}."
                break
        if errors:
            raise ValidationError(errors)

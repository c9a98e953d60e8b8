"""`manage.py dhcp_config --format isc|dnsmasq`: DHCP snippets for the subnets and hosts, with the iPXE chain rule."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hosts.models import Interface, Subnet
from provisioning.boot.dhcp import dnsmasq_config, isc_config


class Command(BaseCommand):
    help = "Print DHCP server config (ISC dhcpd or dnsmasq) for Dock2Box's subnets and hosts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--format", choices=["isc", "dnsmasq"], default="isc")
        parser.add_argument("--tftp-server", default="", help="TFTP server address (default: the portal's host)")
        parser.add_argument("--site", default="", help="only this site's subnets and hosts")

    def handle(self, *args: Any, format: str, tftp_server: str, site: str, **options: Any) -> None:
        portal = settings.DOCK2BOX_PUBLIC_URL
        if not portal:
            raise CommandError("Set DOCK2BOX_PUBLIC_URL: DHCP hands iPXE the portal's /boot.ipxe by that URL.")
        tftp_server = tftp_server or urlsplit(portal).hostname or ""
        subnets = list(Subnet.objects.select_related("site").order_by("network"))
        interfaces = list(
            Interface.objects.select_related("host__site").filter(ip__isnull=False).order_by("host__fqdn", "name")
        )
        if site:
            subnets = [subnet for subnet in subnets if subnet.site.name == site]
            interfaces = [interface for interface in interfaces if interface.subnet_id in {s.pk for s in subnets}]
        render = isc_config if format == "isc" else dnsmasq_config
        self.stdout.write(
            render(subnets=subnets, interfaces=interfaces, portal=portal, tftp_server=tftp_server), ending=""
        )

"""Fill an empty portal with a demo site, subnet, images, a PXE menu and a few hosts."""

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from hosts import services as host_services
from hosts.models import Site
from images import services as image_services
from images.models import Image
from provisioning.builds.services import host_enter_build
from provisioning.catalogue.services import boot_defaults_update, pxe_menu_create, pxe_menu_item_create

DEMO_SITE = "demo1"


class Command(BaseCommand):
    help = "Create demo data (a site, subnets, docker/file/boot images, a PXE menu, hosts). Does nothing twice."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if Site.objects.filter(name=DEMO_SITE).exists():
            self.stdout.write(f"Demo data is there already (site {DEMO_SITE}).")
            return
        debian, centos = self._images()
        self._site_and_hosts(debian, centos)
        self.stdout.write(self.style.SUCCESS(f"Demo data created: site {DEMO_SITE}, 3 images, 4 hosts."))

    @staticmethod
    def _images() -> tuple[Image, Image]:
        """The boot environment (the boot defaults' with the demo menu), a docker and a file image."""
        stamp = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
        boot = image_services.image_create(
            data={"name": "d2b-bootenv", "type": "boot", "description": "Boot environment"}
        )
        boot_version = image_services.image_version_create(
            data={
                "image": boot,
                "version": "2026.11",
                "timestamp": stamp,
                "kernel_url": "http://files.demo.example.com/d2b-bootenv-2026.11/kernel",
                "initrd_url": "http://files.demo.example.com/d2b-bootenv-2026.11/initrd",
            }
        )
        debian = image_services.image_create(
            data={"name": "debian-12", "type": "docker", "repository": "dock2box/debian", "description": "Debian 12"}
        )
        for day, version in [(1, "20261101"), (20, "20261120")]:
            image_services.image_version_create(
                data={"image": debian, "version": version, "timestamp": stamp.replace(day=day)}
            )
        centos = image_services.image_create(
            data={"name": "centos-7.1-x86_64", "type": "file", "description": "CentOS 7.1", "gpt": True}
        )
        image_services.image_version_create(data={"image": centos, "version": "1", "timestamp": stamp})

        menu = pxe_menu_create(data={"name": "default", "title": "Dock2Box demo"})
        pxe_menu_item_create(
            data={"menu": menu, "key": "retry", "label": "Retry PXE boot", "position": 1, "commands": "autoboot"}
        )
        pxe_menu_item_create(
            data={"menu": menu, "key": "shell", "label": "iPXE shell", "position": 2, "commands": "shell"}
        )
        boot_defaults_update(data={"pxe_menu": menu, "boot_version": boot_version, "domain": "example.com"})
        return debian, centos

    @staticmethod
    def _site_and_hosts(debian: Image, centos: Image) -> None:
        """The demo site with two subnets and four hosts, the first in build mode."""
        site = host_services.site_create(
            data={
                "name": DEMO_SITE,
                "description": "Demo site",
                "domain": "demo.example.com",
                "dns_servers": "10.20.0.2, 10.20.0.3",
                "file_uri": "http://files.demo.example.com",
                "registry": "registry.demo.example.com:5000",
                "image": debian,
            }
        )
        host_services.subnet_create(
            data={"network": "10.20.0.0/24", "site": site, "gateway": "10.20.0.1", "vlan": 20,
                  "reserved": "10.20.0.1-10.20.0.9"}
        )  # fmt: skip
        host_services.subnet_create(data={"network": "2001:db8:20::/64", "site": site, "gateway": "2001:db8:20::1"})
        for number in range(1, 5):
            host = host_services.host_create(
                data={
                    "fqdn": f"web{number:02d}.demo.example.com",
                    "site": site,
                    "image": centos if number == 4 else debian,
                    "serial": f"DEMO{number:04d}",
                    "labels": "demo,rack1",
                },
                interfaces=[
                    {"name": "eth0", "mac": f"52:54:00:d2:b0:{number:02x}", "ip": f"10.20.0.{10 + number}"},
                    {"name": "eth1", "mac": f"52:54:00:d2:b1:{number:02x}", "dhcp": True},
                ],
            )
            if number == 1:
                host_enter_build(host=host)

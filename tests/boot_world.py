"""A small, fixed inventory for boot path tests (names and times fixed, so scripts can be compared to golden files)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from hosts.models import Host, Site
from images.models import Image
from provisioning.builds.services import host_enter_build
from provisioning.catalogue.services import boot_defaults_update
from provisioning.models import Build, PxeMenu
from tests import factories

BUILD_MAC = "52:54:00:00:00:01"
IDLE_MAC = "52:54:00:00:00:02"
UNKNOWN_MAC = "52:54:00:00:00:99"


@dataclass
class World:
    site: Site
    debian: Image
    menu: PxeMenu
    build_host: Host
    idle_host: Host
    build: Build


def make_world() -> World:
    site = factories.SiteFactory(
        name="ams1",
        domain="ams1.example.com",
        dns_servers="10.0.0.2,10.0.0.3",
        file_uri="http://files.example.com",
        registry="registry.example.com:5000",
        registry_username="puller",
        registry_password="s3cret-pull",
        root_password_hash="$6$salt$hash",
        ssh_authorized_keys="ssh-ed25519 AAAAC3Nza ops@example.com",
    )
    subnet = factories.SubnetFactory(site=site, network="10.0.0.0/24", gateway="10.0.0.1", vlan=10)
    boot = factories.ImageVersionFactory(
        image=factories.BootImageFactory(name="bootenv", kopts="console=ttyS0"),
        version="1",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )
    debian = factories.ImageFactory(name="debian-12", type="docker", repository="dock2box/debian", kopts="quiet")
    factories.ImageVersionFactory(image=debian, version="a", timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    factories.ImageVersionFactory(
        image=debian, version="b", timestamp=datetime(2026, 2, 1, tzinfo=UTC), digest="sha256:" + "b" * 64
    )
    tarball = factories.ImageFactory(name="tarball", type="file")
    factories.ImageVersionFactory(image=tarball, version="1", timestamp=datetime(2026, 3, 1, tzinfo=UTC), size=1024)
    menu = factories.PxeMenuFactory(name="main", title="Dock2Box test")
    factories.PxeMenuItemFactory(menu=menu, key="shell", label="iPXE shell", commands="shell", position=1)
    boot_defaults_update(data={"pxe_menu": menu, "boot_version": boot, "menu_timeout": 20})
    build_host = factories.HostFactory(fqdn="build.ams1.example.com", site=site, image=debian, kopts="nomodeset")
    factories.InterfaceFactory(host=build_host, name="eth0", mac=BUILD_MAC, ip="10.0.0.11", subnet=subnet)
    factories.InterfaceFactory(host=build_host, name="eth1", mac="52:54:00:00:01:01", dhcp=True, primary=False)
    idle_host = factories.HostFactory(fqdn="idle.ams1.example.com", site=site, image=tarball)
    factories.InterfaceFactory(host=idle_host, name="eth0", mac=IDLE_MAC, ip="10.0.0.12", subnet=subnet)
    build = host_enter_build(host=build_host)
    build_host.refresh_from_db()
    return World(site=site, debian=debian, menu=menu, build_host=build_host, idle_host=idle_host, build=build)

"""The boot decision: what a booting machine is offered, decided once and rendered by its boot loader's renderer.

`menu_decide` turns a host's settings (or an unknown MAC) and the catalogue into a `BootMenu`: its title, timeouts,
identity lines, the install entry (build mode), the operator's items, the images and their versions, and which entry
runs when the timeout runs out. `provisioning.boot.render.ipxe` and `provisioning.boot.render.grub` write the same
`BootMenu` in their own language; neither decides anything (docs/boot.md, "Secure Boot and HTTP boot").
"""

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from provisioning.catalogue.resolve import HostSettings
from provisioning.catalogue.selectors import Catalogue

LOADERS = ("ipxe", "grub")  # who asks: iPXE, or the signed GRUB of the Secure Boot chain
WIDTH = 60  # a menu line longer than the screen is cut


def path_loader(path: str) -> str:
    """Who asks for a boot path: the signed GRUB of the Secure Boot chain (`/grub...`, relayed by the TFTP server),
    or iPXE."""
    return "grub" if path.startswith("/grub") else "ipxe"


@dataclass(frozen=True)
class BootRequest:
    """What a booting host told us, already checked: only safe values survive."""

    mac: str
    ip: str = ""
    netmask: str = ""
    gateway: str = ""
    platform: str = ""  # "pcbios", "efi" or "" (unknown)
    client: str = ""  # its address as the portal sees it (behind trusted proxies, X-Forwarded-For's)
    loader: str = "ipxe"  # one of LOADERS


@dataclass(frozen=True)
class Install:
    """The install entry: the boot environment with the installer's own arguments."""

    label: str  # image:version
    fqdn: str
    mac: str  # the boot NIC's
    kernel_url: str
    initrd_url: str
    config_url: str  # the build's config, its token in it
    kopts: str  # the boot image's, the image's and the host's options (safe text, validated at the model)


@dataclass(frozen=True)
class Item:
    """An operator's menu item: iPXE commands by design (GRUB shows it and says it cannot run them)."""

    key: str
    label: str
    commands: tuple[str, ...]


@dataclass(frozen=True)
class Version:
    label: str  # "b (2026-02-01 00:00)"
    pick_url: str | None  # installs it when picked; None: picking is off


@dataclass(frozen=True)
class ImageChoice:
    name: str
    versions: tuple[Version, ...]  # newest first


@dataclass(frozen=True)
class BootMenu:
    name: str  # the host's name, or "unregistered host"
    mac: str
    platform: str
    title: str
    timeout: int  # seconds before `default` runs
    submenu_timeout: int
    submenu_heading: str
    identity: tuple[str, ...]  # lines shown above the entries
    install: Install | None
    items: tuple[Item, ...]
    images: tuple[ImageChoice, ...]
    default: str  # "install", "local" or "m-<item key>"


def banner(text: str) -> str:
    return f" {text} ".center(WIDTH, "-")


def _identity(request: BootRequest, settings: HostSettings | None, catalogue: Catalogue, notice: str) -> list[str]:
    if settings is None:
        subnet = catalogue.subnet_for(request.ip)
        lines = [
            banner("Unregistered"),
            f"mac: {request.mac}",
            f"ip: {request.ip or '-'}  subnet: {subnet or '-'}  site: {subnet.site if subnet else '-'}",
            "Register this MAC as a host to install it.",
        ]
    else:
        interface = settings.interface
        lines = [
            banner("Registered"),
            f"hostname: {settings.host.fqdn}",
            f"site: {settings.site or '-'}  subnet: {settings.subnet or '-'}",
            f"ip: {(interface.ip if interface else None) or request.ip or 'dhcp'}  mac: {request.mac}",
            f"build: {'yes' if settings.host.build else 'no'}  image: {settings.image_label}",
        ]
    return lines + (textwrap.wrap(f"Note: {notice}", WIDTH) if notice else [])


def menu_decide(
    *,
    request: BootRequest,
    catalogue: Catalogue,
    settings: HostSettings | None,
    install: Install | None,
    pick_url: Callable[[str, str], str] | None = None,
    notice: str = "",
) -> BootMenu:
    """The per-host menu. `install` is the install entry when the host is in build mode; `pick_url` gives the URL that
    installs an image version picked by hand (None: picking is off, the versions only show); `notice` is a line of
    ours saying why a host in build mode boots its disk."""
    defaults = catalogue.defaults
    menu = settings.menu if settings else catalogue.menus.get(defaults.pxe_menu_id or 0)
    items = list(getattr(menu, "item_list", [])) if menu else []
    timeout = (
        defaults.build_timeout
        if install
        else (menu.timeout if menu and menu.timeout is not None else defaults.menu_timeout)
    )
    default_key = menu.default_key(items) if menu else None
    images = sorted(catalogue.images.values(), key=lambda image: image.name)
    return BootMenu(
        name=settings.host.fqdn if settings else "unregistered host",
        mac=request.mac,
        platform=request.platform,
        title=menu.title if menu else defaults.menu_name,
        timeout=timeout,
        submenu_timeout=defaults.submenu_timeout,
        submenu_heading=defaults.submenu_name,
        identity=tuple(_identity(request, settings, catalogue, notice)),
        install=install,
        items=tuple(
            Item(item.key, item.label, tuple(item.commands.replace("\r\n", "\n").split("\n"))) for item in items
        ),
        images=tuple(
            ImageChoice(
                image.name,
                tuple(
                    Version(
                        f"{version.version} ({version.timestamp:%Y-%m-%d %H:%M})",
                        pick_url(image.name, version.version) if pick_url else None,
                    )
                    for version in image.version_list  # type: ignore[attr-defined]
                ),
            )
            for image in images
        ),
        default="install" if install else (f"m-{default_key}" if default_key else "local"),
    )

"""iPXE scripts, as pure functions: data in, script text out.

Every value that lands in a script is either one of ours (labels, URLs built here), validated at the model
(names, kernel options, menu labels pass the safe-text allow-list), or checked here (addresses from the request).
Operator-written menu item commands are iPXE by design and go in as written.
"""

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from images.models import Image
from provisioning.catalogue.resolve import HostSettings
from provisioning.catalogue.selectors import Catalogue

LOCAL_BIOS = "sanboot --no-describe --drive 0x80 || exit"
LOCAL_UEFI = "exit"
LOCAL_ANY = "iseq ${platform} efi && exit || sanboot --no-describe --drive 0x80 || exit"
# MAC, IP and UUID in their own text forms (`:uristring` would print their raw bytes); strings URI-escaped.
BOOT_QUERY = (
    "mac=${netX/mac}&uuid=${uuid}&serial=${serial:uristring}&asset=${asset:uristring}"
    "&buildarch=${buildarch:uristring}&platform=${platform:uristring}&ip=${netX/ip}"
)
WIDTH = 60


@dataclass(frozen=True)
class BootRequest:
    """What a booting host told us, already checked: only safe values survive."""

    mac: str
    ip: str = ""
    netmask: str = ""
    gateway: str = ""
    platform: str = ""  # "pcbios", "efi" or "" (unknown)
    client: str = ""  # its address as the portal sees it (behind trusted proxies, X-Forwarded-For's)


def _banner(text: str) -> str:
    return f" {text} ".center(WIDTH, "-")


def _local_boot(platform: str) -> str:
    return {"pcbios": LOCAL_BIOS, "efi": LOCAL_UEFI}.get(platform, LOCAL_ANY)


def _chain_or_local(*first: str, url: str) -> str:
    """A script that runs `first`, chains to `url`, and boots from the local disk if either fails."""
    return "\n".join(
        [
            "#!ipxe",
            *first,
            f"chain --autofree {url} || goto failed",
            "exit",
            ":failed",
            "echo Dock2Box: the portal did not answer; booting from local disk in 10 seconds",
            "sleep 10",
            LOCAL_ANY,
            "",
        ]
    )


def boot_script(*, portal: str) -> str:
    """`/boot.ipxe`: chain to the per-host script with the host's identity."""
    return _chain_or_local("# Dock2Box: ask the portal for this host's script", url=f"{portal}/ipxe?{BOOT_QUERY}")


def stage0_script(*, portal: str) -> str:
    """The first stage TFTP serves to iPXE: bring the NIC up if needed and chain to the portal over HTTP."""
    return _chain_or_local("isset ${netX/ip} || dhcp || goto failed", url=f"{portal}/boot.ipxe")


def notice_script(*, message: str, platform: str = "") -> str:
    """A script for a request we cannot serve: it says why and boots from the local disk."""
    return "\n".join(
        [
            "#!ipxe",
            f"echo Dock2Box: {message}",
            "echo Booting from local disk in 10 seconds",
            "sleep 10",
            _local_boot(platform),
            "",
        ]
    )


ASK_AGAIN = 6  # times a host asks again (every 10 s) a portal that failed to answer, before its local disk


def ask_again_script(*, message: str, url: str) -> str:
    """A script for a request the portal failed to answer (its database restarting, say): it asks `url` again every
    10 seconds, a minute at most (counted in an iPXE variable, which chained scripts share), then boots from the local
    disk. A host in build mode installs once the portal is back instead of booting what it is to replace."""
    return "\n".join(
        [
            "#!ipxe",
            f"echo Dock2Box: {message}",
            f"iseq ${{d2b_asked}} {'x' * ASK_AGAIN} && goto local ||",
            "set d2b_asked ${d2b_asked}x",
            "echo Asking again in 10 seconds",
            "sleep 10",
            f"chain --autofree {url} || goto local",
            "exit",
            ":local",
            "echo Booting from local disk in 10 seconds",
            "sleep 10",
            LOCAL_ANY,
            "",
        ]
    )


def install_lines(*, portal: str, settings: HostSettings, token: str, kernel_url: str, initrd_url: str) -> list[str]:
    """Load the boot environment with the installer's kernel arguments (DESIGN.md, boot path step 4)."""
    args = " ".join(
        part
        for part in [
            "initrd=initrd",
            f"d2b.config={portal}/config/{token}",
            "BOOTIF=01-${netX/mac:hexhyp}",
            "d2b.ip=${netX/ip} d2b.netmask=${netX/netmask} d2b.gateway=${netX/gateway} d2b.dns=${dns}",
            settings.kopts,
        ]
        if part
    )
    return [
        f"echo Dock2Box: installing {settings.image_label} on {settings.host.fqdn}",
        f"kernel {kernel_url} {args} || goto failed",
        f"initrd --name initrd {initrd_url} || goto failed",
        "boot || goto failed",
    ]


def install_script(*, install: list[str], platform: str) -> str:
    """A script that only installs (a version picked by hand); if the boot environment does not load, boot locally."""
    return "\n".join(
        [
            "#!ipxe",
            *install,
            ":local",
            ":failed",
            "echo Dock2Box: the install did not start; booting from local disk in 10 seconds",
            "sleep 10",
            _local_boot(platform),
            "",
        ]
    )


def _identity(request: BootRequest, settings: HostSettings | None, catalogue: Catalogue, notice: str) -> list[str]:
    if settings is None:
        subnet = catalogue.subnet_for(request.ip)
        lines = [
            _banner("Unregistered"),
            f"mac: {request.mac}",
            f"ip: {request.ip or '-'}  subnet: {subnet or '-'}  site: {subnet.site if subnet else '-'}",
            "Register this MAC as a host to install it.",
        ]
    else:
        interface = settings.interface
        lines = [
            _banner("Registered"),
            f"hostname: {settings.host.fqdn}",
            f"site: {settings.site or '-'}  subnet: {settings.subnet or '-'}",
            f"ip: {(interface.ip if interface else None) or request.ip or 'dhcp'}  mac: {request.mac}",
            f"build: {'yes' if settings.host.build else 'no'}  image: {settings.image_label}",
        ]
    lines += textwrap.wrap(f"Note: {notice}", WIDTH) if notice else []  # a menu line longer than the screen is cut
    return [f"item --gap -- {line}" for line in lines]


# Where an install entry goes when the boot environment does not load: back to the menu.
FAILED_TARGET = [
    ":failed",
    "echo Dock2Box: the boot environment did not load; back to the menu in 10 seconds",
    "sleep 10",
    "goto start",
    "",
]


def menu_script(
    *,
    portal: str,
    request: BootRequest,
    catalogue: Catalogue,
    settings: HostSettings | None,
    install: list[str] | None,
    pick_url: Callable[[str, str], str] | None = None,
    notice: str = "",
) -> str:
    """The per-host menu. `install` holds the install entry's commands when the host is in build mode; `pick_url`
    gives the URL that installs an image version picked by hand (None: picking is off, the versions only show);
    `notice` is a line of ours saying why a host in build mode boots its disk."""
    defaults = catalogue.defaults
    menu = settings.menu if settings else catalogue.menus.get(defaults.pxe_menu_id or 0)
    items = list(getattr(menu, "item_list", [])) if menu else []
    title = menu.title if menu else defaults.menu_name
    timeout = (
        defaults.build_timeout
        if install
        else (menu.timeout if menu and menu.timeout is not None else defaults.menu_timeout)
    )
    default_key = menu.default_key(items) if menu else None
    default = "install" if install else (f"m-{default_key}" if default_key else "local")
    name = settings.host.fqdn if settings else "unregistered host"
    images = sorted(catalogue.images.values(), key=lambda image: image.name)

    lines = [
        "#!ipxe",
        f"# Dock2Box menu for {name} ({request.mac})",
        f"set menu-timeout {timeout * 1000}",
        f"set submenu-timeout {defaults.submenu_timeout * 1000}",
        ":start",
        f"menu -- {title}",  # a title may start with "-": never an option
        *_identity(request, settings, catalogue, notice),
        f"item --gap -- {_banner('Menu')}",
    ]
    if install:
        lines.append(f"item install Install {settings.image_label if settings else ''}")
    lines.append("item local Boot from local disk")
    lines += [f"item m-{item.key} {item.label}" for item in items]
    if images:
        lines.append(f"item --gap -- {_banner('Images')}")
        lines += [f"item i{number} {image.name}" for number, image in enumerate(images, 1)]
    lines += [
        f"choose --default {default} --timeout ${{menu-timeout}} target && goto ${{target}} || goto local",
        ":local",
        "echo Dock2Box: booting from local disk",
        _local_boot(request.platform),
        "goto start",
    ]
    if install:
        lines += [":install", *install]
    for item in items:
        lines += [f":m-{item.key}", *item.commands.replace("\r\n", "\n").split("\n"), "goto start"]
    for number, image in enumerate(images, 1):
        lines += _image_submenu(number, image, defaults.submenu_name, pick_url)
    return "\n".join([*lines, *FAILED_TARGET])


def _image_submenu(number: int, image: Image, heading: str, pick_url: Callable[[str, str], str] | None) -> list[str]:
    """An image's submenu (label `i<number>`): its versions newest first, each installing when picked (or saying that
    this menu cannot start installs)."""
    versions = image.version_list  # type: ignore[attr-defined]
    lines = [
        f":i{number}",
        f"menu -- {image.name}",
        f"item --gap -- {_banner(heading)}",
        "item --key 0x08 start Back (backspace)",
    ]
    lines += [
        f"item i{number}v{index} {version.version} ({version.timestamp:%Y-%m-%d %H:%M})"
        for index, version in enumerate(versions, 1)
    ]
    first = f"i{number}v1" if versions else "start"
    lines.append(f"choose --default {first} --timeout ${{submenu-timeout}} target && goto ${{target}} || goto start")
    for index, version in enumerate(versions, 1):
        if pick_url is None:
            pick = ["echo Dock2Box: this menu cannot start installs; put the host in build mode in the portal",
                    "sleep 5", "goto start"]  # fmt: skip
        else:
            pick = [f"chain --autofree {pick_url(image.name, version.version)} || goto start"]
        lines += [f":i{number}v{index}", *pick]
    return lines

"""iPXE scripts, as pure functions: data in, script text out.

Every value that lands in a script is either one of ours (labels, URLs built here), validated at the model
(names, kernel options, menu labels pass the safe-text allow-list), or checked here (addresses from the request).
Operator-written menu item commands are iPXE by design and go in as written.
"""

from provisioning.boot.menu import BootMenu, ImageChoice, Install, banner

LOCAL_BIOS = "sanboot --no-describe --drive 0x80 || exit"
LOCAL_UEFI = "exit"
LOCAL_ANY = "iseq ${platform} efi && exit || sanboot --no-describe --drive 0x80 || exit"
# MAC, IP and UUID in their own text forms (`:uristring` would print their raw bytes); strings URI-escaped.
BOOT_QUERY = (
    "mac=${netX/mac}&uuid=${uuid}&serial=${serial:uristring}&asset=${asset:uristring}"
    "&buildarch=${buildarch:uristring}&platform=${platform:uristring}&ip=${netX/ip}"
)


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


def install_lines(install: Install) -> list[str]:
    """Load the boot environment with the installer's kernel arguments (DESIGN.md, boot path step 4): the address iPXE
    got from DHCP goes to the installer."""
    args = " ".join(
        part
        for part in [
            "initrd=initrd",
            f"d2b.config={install.config_url}",
            "BOOTIF=01-${netX/mac:hexhyp}",
            "d2b.ip=${netX/ip} d2b.netmask=${netX/netmask} d2b.gateway=${netX/gateway} d2b.dns=${dns}",
            install.kopts,
        ]
        if part
    )
    return [
        f"echo Dock2Box: installing {install.label} on {install.fqdn}",
        f"kernel {install.kernel_url} {args} || goto failed",
        f"initrd --name initrd {install.initrd_url} || goto failed",
        "boot || goto failed",
    ]


def install_script(*, install: Install, platform: str) -> str:
    """A script that only installs (a version picked by hand); if the boot environment does not load, boot locally."""
    return "\n".join(
        [
            "#!ipxe",
            *install_lines(install),
            ":local",
            ":failed",
            "echo Dock2Box: the install did not start; booting from local disk in 10 seconds",
            "sleep 10",
            _local_boot(platform),
            "",
        ]
    )


# Where an install entry goes when the boot environment does not load: back to the menu.
FAILED_TARGET = [
    ":failed",
    "echo Dock2Box: the boot environment did not load; back to the menu in 10 seconds",
    "sleep 10",
    "goto start",
    "",
]


def menu_script(menu: BootMenu) -> str:
    """The per-host menu, as iPXE runs it."""
    lines = [
        "#!ipxe",
        f"# Dock2Box menu for {menu.name} ({menu.mac})",
        f"set menu-timeout {menu.timeout * 1000}",
        f"set submenu-timeout {menu.submenu_timeout * 1000}",
        ":start",
        f"menu -- {menu.title}",  # a title may start with "-": never an option
        *[f"item --gap -- {line}" for line in menu.identity],
        f"item --gap -- {banner('Menu')}",
    ]
    if menu.install:
        lines.append(f"item install Install {menu.install.label}")
    lines.append("item local Boot from local disk")
    lines += [f"item m-{item.key} {item.label}" for item in menu.items]
    if menu.images:
        lines.append(f"item --gap -- {banner('Images')}")
        lines += [f"item i{number} {image.name}" for number, image in enumerate(menu.images, 1)]
    lines += [
        f"choose --default {menu.default} --timeout ${{menu-timeout}} target && goto ${{target}} || goto local",
        ":local",
        "echo Dock2Box: booting from local disk",
        _local_boot(menu.platform),
        "goto start",
    ]
    if menu.install:
        lines += [":install", *install_lines(menu.install)]
    for item in menu.items:
        lines += [f":m-{item.key}", *item.commands, "goto start"]
    for number, image in enumerate(menu.images, 1):
        lines += _image_submenu(number, image, menu.submenu_heading)
    return "\n".join([*lines, *FAILED_TARGET])


def _image_submenu(number: int, image: ImageChoice, heading: str) -> list[str]:
    """An image's submenu (label `i<number>`): its versions newest first, each installing when picked (or saying that
    this menu cannot start installs)."""
    lines = [
        f":i{number}",
        f"menu -- {image.name}",
        f"item --gap -- {banner(heading)}",
        "item --key 0x08 start Back (backspace)",
    ]
    lines += [f"item i{number}v{index} {version.label}" for index, version in enumerate(image.versions, 1)]
    first = f"i{number}v1" if image.versions else "start"
    lines.append(f"choose --default {first} --timeout ${{submenu-timeout}} target && goto ${{target}} || goto start")
    for index, version in enumerate(image.versions, 1):
        if version.pick_url is None:
            pick = ["echo Dock2Box: this menu cannot start installs; put the host in build mode in the portal",
                    "sleep 5", "goto start"]  # fmt: skip
        else:
            pick = [f"chain --autofree {version.pick_url} || goto start"]
        lines += [f":i{number}v{index}", *pick]
    return lines

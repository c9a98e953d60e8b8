"""GRUB configs for the Secure Boot chain (shim → Debian's signed network GRUB), as pure functions: a `BootMenu` in,
`grub.cfg` text out. The same decisions as the iPXE scripts, written in GRUB's language.

Every value goes into the config single-quoted (`quote`): GRUB expands nothing inside single quotes, and a quote in
the value ends the quoting, is written escaped and starts it again, so no value can start a command or expand a
variable. Values with a control character are refused outright (the models' allow-lists keep them out already).

Debian's signed network GRUB speaks TFTP only (it has no HTTP module), so it reads everything through the TFTP server:
its first config (`grub/grub.cfg`, made here), the per-host config, and every URL of ours (a kernel, an initrd, a
version picked in the menu) under a name the portal signed (`provisioning.boot.relay`). The installer itself, once
its kernel runs, speaks HTTP as usual. GRUB cannot run an operator's iPXE menu items: they are shown, and say so.
"""

import re

from provisioning.boot.menu import BootMenu, ImageChoice, Install, banner
from provisioning.boot.relay import relay_name

LOCAL = ["echo 'Booting from local disk'", "exit"]  # back to the firmware: its next boot entry is the disk
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
ASK_AGAIN = 6  # as iPXE: a minute of asking again every 10 seconds, then the local disk


def quote(value: str) -> str:
    """`value` as one GRUB word, nothing in it expanded."""
    if _CONTROL_RE.search(value):
        raise ValueError(f"a control character cannot go into a GRUB config: {value[:60]!r}")
    return "'" + value.replace("'", "'\\''") + "'"


def _echo(text: str) -> str:
    return f"echo {quote(text)}"


def stage_config() -> str:
    """`grub/grub.cfg` on the TFTP server, which the signed network GRUB reads first: the host's own config by its
    MAC (answered by the portal through the TFTP server), or the local disk when that does not come."""
    return "\n".join(
        [
            "# Dock2Box: ask the portal for this host's menu",
            'configfile "/grub/host-${net_default_mac}.cfg"',
            _echo("Dock2Box: the portal did not answer; booting from local disk in 10 seconds"),
            "sleep 10",
            *LOCAL,
            "",
        ]
    )


def notice_config(*, message: str, platform: str = "") -> str:
    """A config for a request we cannot serve: it says why and boots from the local disk."""
    return "\n".join(
        [_echo(f"Dock2Box: {message}"), _echo("Booting from local disk in 10 seconds"), "sleep 10", *LOCAL, ""]
    )


def ask_again_config(*, message: str, url: str) -> str:
    """A config for a request the portal failed to answer: ask `url` again every 10 seconds, a minute at most (counted
    in an exported variable, which the configs it loads see), then boot from the local disk."""
    return "\n".join(
        [
            _echo(f"Dock2Box: {message}"),
            f'if [ "$d2b_asked" != {quote("x" * ASK_AGAIN)} ]; then',
            '  set d2b_asked="${d2b_asked}x"',
            "  export d2b_asked",
            "  " + _echo("Asking again in 10 seconds"),
            "  sleep 10",
            f"  configfile {quote('/' + relay_name(url))}",
            "fi",
            _echo("Booting from local disk in 10 seconds"),
            "sleep 10",
            *LOCAL,
            "",
        ]
    )


def install_lines(install: Install) -> list[str]:
    """Load the boot environment (a signed kernel: shim checks it) with the installer's arguments. GRUB does not
    hand its DHCP lease to the kernel: the installer asks DHCP again on the boot NIC, which BOOTIF names; it tells
    the portal it was booted by this chain (`d2b.chain`)."""
    args = [
        f"d2b.config={install.config_url}", f"BOOTIF=01-{install.mac.replace(':', '-')}", "d2b.chain=shim-grub",
        *install.kopts.split(),
    ]  # fmt: skip
    return [
        _echo(f"Dock2Box: installing {install.label} on {install.fqdn}"),
        f"linux {quote('/' + relay_name(install.kernel_url))} {' '.join(quote(arg) for arg in args)}",
        f"initrd {quote('/' + relay_name(install.initrd_url))}",
        "boot",
        # Only reached when the boot environment did not load.
        _echo("Dock2Box: the boot environment did not load; back to the menu in 10 seconds"),
        "sleep 10",
    ]


def install_config(*, install: Install, platform: str = "") -> str:
    """A config that only installs (a version picked by hand); if the boot environment does not load, boot locally."""
    return "\n".join([*install_lines(install), *LOCAL, ""])


def _entry(title: str, entry_id: str, body: list[str]) -> list[str]:
    return [f"menuentry {quote(title)} --id {quote(entry_id)} {{", *[f"  {line}" for line in body], "}"]


def menu_config(menu: BootMenu) -> str:
    """The per-host menu, as GRUB runs it. The title and the identity lines are entries that do nothing (GRUB menus
    have neither a title nor gaps)."""
    lines = [
        f"# Dock2Box menu for {menu.name} ({menu.mac})",
        f"set timeout={menu.timeout}",
        "set timeout_style=menu",
        f"set default={quote(menu.default)}",
        *_entry(menu.title, "title", ["true"]),
    ]
    for number, line in enumerate(menu.identity, 1):
        lines += _entry(line, f"gap-{number}", ["true"])
    lines += _entry(banner("Menu"), "gap-menu", ["true"])
    if menu.install:
        lines += _entry(f"Install {menu.install.label}", "install", install_lines(menu.install))
    lines += _entry("Boot from local disk", "local", LOCAL)
    for item in menu.items:
        body = [_echo("Dock2Box: this item runs iPXE commands, which GRUB (the Secure Boot chain) cannot"), "sleep 5"]
        lines += _entry(item.label, f"m-{item.key}", body)
    if menu.images:
        lines += _entry(banner("Images"), "gap-images", ["true"])
    for number, image in enumerate(menu.images, 1):
        lines += _image_submenu(number, image, menu.submenu_timeout, menu.submenu_heading)
    return "\n".join([*lines, ""])


def _image_submenu(number: int, image: ImageChoice, timeout: int, heading: str) -> list[str]:
    """An image's submenu (id `i<number>`): its versions newest first, each installing when picked (or saying that
    this menu cannot start installs). Escape goes back."""
    body = [f"set timeout={timeout}", f"set default={quote(f'i{number}v1')}"]
    body += _entry(banner(heading), f"i{number}-gap", ["true"])
    for index, version in enumerate(image.versions, 1):
        if version.pick_url is None:
            pick = [_echo("Dock2Box: this menu cannot start installs; put the host in build mode in the portal"),
                    "sleep 5"]  # fmt: skip
        else:
            pick = [f"configfile {quote('/' + relay_name(version.pick_url))}"]
        body += _entry(version.label, f"i{number}v{index}", pick)
    return [f"submenu {quote(image.name)} --id {quote(f'i{number}')} {{", *[f"  {line}" for line in body], "}"]

"""The boot loaders' languages: each renders the same decisions (`provisioning.boot.menu`)."""

from collections.abc import Callable
from dataclasses import dataclass

from provisioning.boot.menu import BootMenu
from provisioning.boot.render import grub, ipxe


@dataclass(frozen=True)
class Renderer:
    menu: Callable[[BootMenu], str]
    notice: Callable[..., str]  # (message=, platform=): says why, boots the local disk
    ask_again: Callable[..., str]  # (message=, url=): asks `url` again for a minute, then the local disk
    install: Callable[..., str]  # (install=, platform=): only installs (a version picked by hand)


RENDERERS = {
    "ipxe": Renderer(ipxe.menu_script, ipxe.notice_script, ipxe.ask_again_script, ipxe.install_script),
    "grub": Renderer(grub.menu_config, grub.notice_config, grub.ask_again_config, grub.install_config),
}

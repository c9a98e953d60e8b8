"""The etcd projection of the original Dock2Box layout, as pure functions: rows in, `{key: value}` out.

Keys are relative to a document's directory (`/host/<fqdn>/`, `/image/<name>/`, ...); every value is a string,
booleans are `"true"`/`"false"`, inherited (unset) host settings are left out, as `/api/v1` leaves them out.
"""

from collections.abc import Iterable

from hosts.models import Host, Interface, Site, Subnet
from images.models import LATEST, Image, ImageVersion
from provisioning.models import BootDefaults, PxeMenu

Tree = dict[str, str]
KINDS = ["host", "hwaddr", "image", "subnets", "sites", "default"]


def flag(value: bool | None) -> str:
    return "true" if value else "false"


def stamp(version: ImageVersion) -> str:
    """The original's version timestamp format: `YYYYmmdd-HHMMSS` (UTC)."""
    return version.timestamp.strftime("%Y%m%d-%H%M%S")


def _nic(interface: Interface) -> Tree:
    """A NIC as the original stored it; netmask and gateway default to its subnet's, as everywhere else."""
    netmask, gateway = interface.addressing()
    values = {"hwaddr": interface.mac, "ip": interface.ip, "netmask": netmask, "gw": gateway}
    return {name: str(value) for name, value in values.items() if value}


def host_tree(host: Host, interfaces: Iterable[Interface], *, image: str, version: str, site: str) -> Tree:
    """`/host/<fqdn>/`: the host's own settings, its interfaces, `interface/default` as a copy of the primary NIC."""
    tree: Tree = {"build": flag(host.build), "debug": flag(host.debug), "kopts": host.kopts}
    optional = {
        "legacynet": "true" if host.legacynet else "",
        "gpt": flag(host.gpt) if host.gpt is not None else "",
        "kexec": flag(host.kexec) if host.kexec is not None else "",
        "volmgt": host.volmgt,
        "image": image,
        "version": (version or LATEST) if image else "",
        "site": site,
    }
    tree |= {name: value for name, value in optional.items() if value}
    for interface in interfaces:
        names = [interface.name] + (["default"] if interface.primary and interface.name != "default" else [])
        for name in names:
            tree |= {f"interface/{name}/{field}": value for field, value in _nic(interface).items()}
        if interface.primary and interface.dhcp:
            tree["dhcp/hwaddr"] = interface.mac
            if interface.ip:
                tree["dhcp/ipv4"] = str(interface.ip)
    return tree


def hwaddr_tree(interface: Interface, fqdn: str) -> Tree:
    """`/hwaddr/<mac>/`: the reverse index from a MAC to its host and interface."""
    return {"hostname": fqdn, "interface": interface.name}


def image_tree(image: Image, versions: list[ImageVersion], *, bootstrap_image: str) -> Tree:
    """`/image/<name>/` with `versions/<v>/`; `version` is the newest (the original's `latest`)."""
    tree: Tree = {
        "type": image.type,
        "bootstrap_image": bootstrap_image,
        "kopts": image.kopts,
        "docker_registry": image.registry,
        "file_registry": image.file_url,
        "debug": flag(image.debug),
        "gpt": flag(image.gpt),
        "kexec": flag(image.kexec),
        "main_script": image.main_script,
        "naming_scheme": image.naming_scheme,
        "version": versions[0].version if versions else "",
    }
    optional = {
        "volmgt": image.volmgt,
        "uefi": flag(image.uefi) if image.uefi is not None else "",
        "post_script": image.post_script,
    }
    tree |= {name: value for name, value in optional.items() if value}
    for version in versions:
        tree[f"versions/{version.version}/timestamp"] = stamp(version)
        tree[f"versions/{version.version}/main_script"] = version.main_script
    return tree


def subnet_tree(subnet: Subnet, *, site: str) -> Tree:
    """`/subnets/<network>-<prefixlen>/`."""
    tree = {"site": site}
    if subnet.gateway:
        tree["gateway"] = str(subnet.gateway)
    if subnet.vlan:
        tree["vlan"] = str(subnet.vlan)
    return tree


def site_tree(site: Site) -> Tree:
    """`/sites/<name>/`, with both spellings of the file server and the registry, as the original's readers differ."""
    tree = {
        "domain": site.domain,
        "file_uri": site.file_uri,
        "file_server": site.file_uri,
        "registry": site.registry,
        "docker_registry": site.registry,
    }
    if site.dns_servers:
        tree["dns_servers"] = site.dns_servers
    return tree


def default_tree(defaults: BootDefaults, menu: PxeMenu | None, *, bootstrap: ImageVersion | None) -> Tree:
    """`/default/`: the PXE menu defaults and the global menu's items under `menu_items/<key>/`."""
    items = list(menu.items.all()) if menu else []
    default_item = (menu.default_key(items) if menu else None) or "localdisk"
    tree: Tree = {
        "menu_timeout": str(defaults.menu_timeout),
        "submenu_timeout": str(defaults.submenu_timeout),
        "menu_default": default_item,
        "submenu_default": LATEST,
        "menu_name": defaults.menu_name,
        "submenu_name": defaults.submenu_name,
        "bootstrap_image": bootstrap.image.name if bootstrap else "",
        "bootstrap_version": bootstrap.version if bootstrap else "",
    }
    for item in items:
        tree[f"menu_items/{item.key}/name"] = item.label
        tree[f"menu_items/{item.key}/command"] = item.commands
    return tree

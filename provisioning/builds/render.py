"""Host configs for the installer, as pure functions: the JSON document, its shell form, operator templates."""

import json
from typing import Any

from netaddr import IPAddress

from dock2box.validators import text_lines
from hosts.models import Interface, Site
from images.choices import ImageType
from images.selectors import registry_url
from provisioning.builds.templating import shell_quote, template_render
from provisioning.catalogue.resolve import HostSettings
from provisioning.models import Build


def _prefixlen(interface: Interface) -> int | None:
    """The prefix length of the interface's network: its subnet's, else its own netmask's (for a static address)."""
    if interface.subnet and interface.subnet.ip_network:
        return interface.subnet.ip_network.prefixlen
    return IPAddress(interface.netmask).netmask_bits() if interface.ip and interface.netmask else None


def _interface(interface: Interface) -> dict[str, Any]:
    netmask, gateway = interface.addressing()
    return {
        "name": interface.name,
        "mac": interface.mac,
        "ip": interface.ip or "",
        "netmask": netmask,
        "gateway": gateway,
        "prefixlen": _prefixlen(interface),
        "vlan": interface.subnet.vlan if interface.subnet else None,
        "dhcp": interface.dhcp or not interface.ip,
        "primary": interface.primary,
    }


def _image_source(settings: HostSettings, portal: str) -> dict[str, Any]:
    image, version = settings.image, settings.version
    if image is None or version is None:
        return {}
    source: dict[str, Any] = {"digest": version.digest, "size": version.size}
    if image.type == ImageType.DOCKER:
        source |= {
            "registry": settings.registry,
            "registry_url": registry_url(settings.registry) if settings.registry else "",
            "repository": image.repository or image.name,
            "tag": version.version,
        }
    elif version.file:
        source["url"] = f"{portal}/files/images/{image.name}/{version.version}/file"
    else:
        base = (image.file_url or settings.file_uri).rstrip("/")
        source["url"] = f"{base}/{image.name}-{version.version}/image.tar.xz" if base else ""
    return source


def config_document(
    *, settings: HostSettings, interfaces: list[Interface], build: Build | None, portal: str
) -> dict[str, Any]:
    """Everything the installer needs, secrets included (only ever served for a valid build token).

    Without a build (an operator's preview) the build id is empty and the token in the events URL a placeholder.
    """
    host, site, image, version = settings.host, settings.site, settings.image, settings.version
    nics = [_interface(interface) for interface in interfaces]
    boot = next((nic for nic in nics if settings.interface and nic["mac"] == settings.interface.mac), None)
    return {
        "build_id": build.pk if build else "",
        "events_url": f"{portal}/config/{build.token if build else 'TOKEN'}/events",
        "booted_url": f"{portal}/booted/{build.report_token}" if build and build.report_token else "",
        "fqdn": host.fqdn,
        "hostname": host.hostname,
        "domain": settings.domain or host.fqdn.partition(".")[2],
        "site": site.name if site else "",
        "dns_servers": settings.dns_servers,
        "ntp_servers": settings.ntp_servers,
        "boot_hwaddr": boot["mac"] if boot else "",
        "ipv4": boot["ip"] if boot else "",
        "netmask": boot["netmask"] if boot else "",
        "gateway": boot["gateway"] if boot else "",
        "dhcp": boot["dhcp"] if boot else True,
        "interfaces": nics,
        "image": image.name if image else "",
        "image_version": version.version if version else "",
        "image_type": image.type if image else "",
        "image_source": _image_source(settings, portal),
        "registry": settings.registry,
        "file_uri": settings.file_uri,
        "gpt": settings.gpt,
        "uefi": settings.uefi,
        "secure_boot": settings.secure_boot,
        "kexec": settings.kexec,
        "debug": settings.debug,
        "volmgt": settings.volmgt,
        "legacynet": host.legacynet,
        "kopts": settings.kopts,
        "main_script": "\n".join(
            text for text in [image.main_script if image else "", version.main_script if version else ""] if text
        ),
        "post_script": image.post_script if image else "",
        "secrets": _secrets(site) if build else MASKED,
    }


# What a preview (no build token) shows instead of the secrets.
MASKED = {
    "root_password_hash": "********",
    "ssh_authorized_keys": ["********"],
    "registry_username": "********",
    "registry_password": "********",
}


def _secrets(site: Site | None) -> dict[str, Any]:
    if site is None:
        return {"root_password_hash": "", "ssh_authorized_keys": [], "registry_username": "", "registry_password": ""}
    return {
        "root_password_hash": site.root_password_hash,
        "ssh_authorized_keys": [key for key in text_lines(site.ssh_authorized_keys) if key.strip()],
        "registry_username": site.registry_username,
        "registry_password": site.registry_password,
    }


def config_env(document: dict[str, Any]) -> str:
    """The document as shell-sourceable `D2B_*` variables, named as the original installer read them."""
    source = document["image_source"]
    secrets = document["secrets"]
    values: list[tuple[str, object]] = [
        ("BUILD_ID", document["build_id"]),
        ("EVENTS_URL", document["events_url"]),
        ("BOOTED_URL", document["booted_url"]),
        ("HOSTNAME", document["hostname"]),
        ("FQDN", document["fqdn"]),
        ("DOMAIN", document["domain"]),
        ("SITE", document["site"]),
        ("DNS_SERVERS", " ".join(document["dns_servers"])),
        ("NTP_SERVERS", " ".join(document["ntp_servers"])),
        ("BOOT_HWADDR", document["boot_hwaddr"]),
        ("IPV4", document["ipv4"]),
        ("NETMASK", document["netmask"]),
        ("GATEWAY", document["gateway"]),
        ("DHCP", document["dhcp"]),
        ("IMAGE", document["image"]),
        ("IMAGE_VERSION", document["image_version"]),
        ("IMAGE_TYPE", document["image_type"]),
        ("IMAGE_URL", source.get("url", "")),
        ("IMAGE_REPOSITORY", source.get("repository", "")),
        ("IMAGE_TAG", source.get("tag", "")),
        ("IMAGE_DIGEST", source.get("digest", "")),
        ("IMAGE_SIZE", source.get("size") or ""),
        ("REGISTRY", document["registry"]),
        ("REGISTRY_URL", source.get("registry_url", "")),
        ("REGISTRY_USERNAME", secrets["registry_username"]),
        ("REGISTRY_PASSWORD", secrets["registry_password"]),
        ("FILE_URI", document["file_uri"]),
        ("GPT", document["gpt"]),
        ("UEFI", document["uefi"]),
        ("SECURE_BOOT", document["secure_boot"]),
        ("DEBUG", document["debug"]),
        ("KEXEC", document["kexec"]),
        ("VOLMGT", document["volmgt"]),
        ("LEGACYNET", document["legacynet"]),
        ("KOPTS", document["kopts"]),
        ("ROOT_PASSWORD_HASH", secrets["root_password_hash"]),
        ("SSH_AUTHORIZED_KEYS", "\n".join(secrets["ssh_authorized_keys"])),
        ("MAIN_SCRIPT", document["main_script"]),
        ("POST_SCRIPT", document["post_script"]),
        ("INTERFACES", " ".join(interface["name"] for interface in document["interfaces"])),
    ]
    for number, interface in enumerate(document["interfaces"]):
        values += [(f"IF{number}_{key.upper()}", value) for key, value in interface.items()]
    lines = ["# Dock2Box host config: source it with `. FILE`"]
    lines += [f"D2B_{name}={shell_quote(value)}" for name, value in values]
    return "\n".join(lines) + "\n"


def config_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def config_template(*, content: str, document: dict[str, Any]) -> str:
    """An operator's kickstart/preseed/cloud-init template rendered with the document as its context."""
    return template_render(content, document)

"""Import an original-layout tree (an `etcdtool export` file, or a live etcd) into the database, all or nothing.

Every record goes through the same services as the admin and the API, so it is validated the same way. The
original's data has known inconsistencies, read here as it meant them: sites spell their file server `file_uri` or
`file_server` and their registry `registry` or `docker_registry`; booleans are strings (`true`, `True`, ...);
arrays may be stored as maps keyed `0`, `1`, ...; `/hwaddr` was written by hand and is rebuilt from the interfaces.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from dock2box.validators import normalise_mac
from hosts import services as host_services
from hosts.addressing import subnet_network
from hosts.models import Host, Site, Subnet
from images import services as image_services
from images.choices import ImageType
from images.models import LATEST, NEWEST_FIRST, Image, ImageVersion
from images.selectors import image_version_named
from provisioning.builds.services import host_cancel_build, host_enter_build
from provisioning.catalogue.services import (
    boot_defaults_update,
    pxe_menu_create,
    pxe_menu_item_create,
    pxe_menu_item_update,
    pxe_menu_update,
)
from provisioning.models import PxeMenu

TRUE, FALSE = {"true", "yes", "1"}, {"false", "no", "0", ""}


class Rejected(Exception):
    """One record cannot be imported; the message says why."""


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


def _text(value: Any) -> str:
    if isinstance(value, dict):  # an array stored as a map: {"0": "a", "1": "b"}
        return ",".join(str(value[key]) for key in sorted(value, key=lambda k: int(k) if k.isdigit() else k))
    return "" if value is None else str(value)


def _flag(value: Any, path: str, *, nullable: bool = False) -> bool | None:
    text = _text(value).strip().lower()
    if nullable and text == "":
        return None
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise Rejected(f"{path}: '{value}' is not true or false")


def _timestamp(value: Any, path: str) -> datetime:
    text = _text(value)
    for pattern in ("%Y%m%d-%H%M%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise Rejected(f"{path}/timestamp: '{text}' is not a time (write YYYYmmdd-HHMMSS)")


def messages(error: ValidationError, path: str) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{path}/{name}: {' '.join(messages)}" for name, messages in error.message_dict.items())
    return f"{path}: {' '.join(error.messages)}"


def import_tree(tree: dict[str, Any], *, dry_run: bool = False) -> ImportReport:
    """Import everything or nothing: any rejected record rolls the whole import back."""
    report = ImportReport()
    with transaction.atomic():
        steps = [
            ("sites", site_put),
            ("subnets", subnet_put),
            ("image", image_put),
            ("default", None),
            ("host", host_put),
        ]
        boot_names = _boot_image_names(tree)
        for kind, handler in steps:
            if kind == "default":
                _run(report, "/default", lambda: _default(tree.get("default") or {}))
                continue
            # Boot images first: other images name them as their bootstrap image.
            for key, document in sorted(
                (tree.get(kind) or {}).items(), key=lambda item: (item[0] not in boot_names, item[0])
            ):
                path = f"/{kind}/{key}"
                if not isinstance(document, dict):
                    report.rejected.append(f"{path}: not a directory")
                    continue
                _run(report, path, lambda h=handler, k=key, d=document, p=path: h(k, d, p, boot_names))
        if tree.get("hwaddr"):
            report.notes.append(
                f"/hwaddr: {len(tree['hwaddr'])} entries ignored; the index is rebuilt from the interfaces"
            )
        if report.rejected or dry_run:
            transaction.set_rollback(True)
    return report


def _run(report: ImportReport, path: str, action: Any) -> None:
    try:
        with transaction.atomic():
            action()
        report.imported.append(path)
    except Rejected as error:
        report.rejected.append(str(error))
    except ValidationError as error:
        report.rejected.append(messages(error, path))


def _boot_image_names(tree: dict[str, Any]) -> set[str]:
    """Images that something boots with: the original had no `boot` type, they were just `/image` entries."""
    names = {_text((tree.get("default") or {}).get("bootstrap_image"))}
    names |= {
        _text(image.get("bootstrap_image")) for image in (tree.get("image") or {}).values() if isinstance(image, dict)
    }
    return names - {""}


def site_put(name: str, document: dict[str, Any], path: str, boot_names: set[str]) -> None:
    data = {
        "name": name,
        "domain": _text(document.get("domain")),
        "file_uri": _text(document.get("file_uri") or document.get("file_server")),
        "registry": _text(document.get("registry") or document.get("docker_registry")),
        "dns_servers": _text(document.get("dns_servers")),
    }
    existing = Site.objects.filter(name=name).first()
    if existing:
        host_services.site_update(site=existing, data=data)
    else:
        host_services.site_create(data=data)


def subnet_put(key: str, document: dict[str, Any], path: str, boot_names: set[str]) -> None:
    site = Site.objects.filter(name=_text(document.get("site"))).first()
    if site is None:
        raise Rejected(f"{path}/site: no site '{_text(document.get('site'))}'")
    data = {
        "network": subnet_network(key),
        "site": site,
        "gateway": _text(document.get("gateway")) or None,
        "vlan": int(_text(document["vlan"])) if _text(document.get("vlan")).isdigit() else None,
    }
    existing = Subnet.objects.filter(network=data["network"]).first()
    if existing:
        host_services.subnet_update(subnet=existing, data=data)
    else:
        host_services.subnet_create(data=data)


def image_put(name: str, document: dict[str, Any], path: str, boot_names: set[str]) -> None:
    kind = _text(document.get("type")) or (ImageType.BOOT if name in boot_names else ImageType.DOCKER)
    if name in boot_names:
        kind = ImageType.BOOT
    if kind not in ImageType.values:
        raise Rejected(f"{path}/type: '{kind}' is not docker, file or boot")
    data = {
        "name": name,
        "type": kind,
        "kopts": _text(document.get("kopts")),
        "registry": _text(document.get("docker_registry")) if kind == ImageType.DOCKER else "",
        "file_url": _text(document.get("file_registry")),
        "debug": bool(_flag(document.get("debug"), f"{path}/debug")),
        "gpt": _flag(document.get("gpt"), f"{path}/gpt", nullable=True),
        "kexec": _flag(document.get("kexec"), f"{path}/kexec", nullable=True),
        "uefi": _flag(document.get("uefi"), f"{path}/uefi", nullable=True),
        "volmgt": _text(document.get("volmgt")),
        "naming_scheme": _text(document.get("naming_scheme")),
        "main_script": _text(document.get("main_script")),
        "post_script": _text(document.get("post_script")),
        "boot_version": _boot_version(_text(document.get("bootstrap_image")), "", f"{path}/bootstrap_image"),
    }
    image = Image.objects.filter(name=name).first()
    image = image_services.image_update(image=image, data=data) if image else image_services.image_create(data=data)
    for version, values in sorted((document.get("versions") or {}).items()):
        version_put(image, version, values, f"{path}/versions/{version}")


def version_put(image: Image, version: str, values: Any, path: str) -> ImageVersion:
    """Create or replace one version of an image from its document (`timestamp`, `main_script`)."""
    if not isinstance(values, dict):
        raise Rejected(f"{path}: not a directory")
    fields = {
        "image": image,
        "version": version,
        "timestamp": _timestamp(values.get("timestamp"), path),
        "main_script": _text(values.get("main_script")),
    }
    stored = ImageVersion.objects.filter(image=image, version=version).first()
    try:
        if stored:
            return image_services.image_version_update(version=stored, data=fields)
        return image_services.image_version_create(data=fields)
    except ValidationError as error:
        raise Rejected(messages(error, path)) from error


def _boot_version(image: str, version: str, path: str) -> ImageVersion | None:
    if not image:
        return None
    found = ImageVersion.objects.filter(image__name=image, image__type=ImageType.BOOT)
    found = found.filter(version=version) if version and version != LATEST else found.order_by(*NEWEST_FIRST)
    chosen = found.first()
    if chosen is None:
        raise Rejected(f"{path}: no boot image version {image}:{version or LATEST}")
    return chosen


def _default(document: dict[str, Any]) -> None:
    if not document:
        return
    items = document.get("menu_items") or {}
    menu = PxeMenu.objects.filter(name="default").first() or pxe_menu_create(data={"name": "default"})
    for position, (key, item) in enumerate(sorted(items.items()), 1):
        fields = {"menu": menu, "key": key, "label": _text(item.get("name")), "commands": _text(item.get("command")),
                  "position": position}  # fmt: skip
        stored = menu.items.filter(key=key).first()
        if stored:
            pxe_menu_item_update(item=stored, data=fields)
        else:
            pxe_menu_item_create(data=fields)
    default_key = _text(document.get("menu_default"))
    default_item = menu.items.filter(key=default_key).first()
    pxe_menu_update(menu=menu, data={"default_item": default_item})
    numbers = {name: _text(document.get(name)) for name in ("menu_timeout", "submenu_timeout")}
    for name, value in numbers.items():
        if value and not value.isdigit():
            raise Rejected(f"/default/{name}: '{value}' is not a number of seconds")
    data: dict[str, Any] = {
        "pxe_menu": menu,
        "boot_version": _boot_version(
            _text(document.get("bootstrap_image")), _text(document.get("bootstrap_version")), "/default/bootstrap_image"
        ),
        **{name: int(value) for name, value in numbers.items() if value},
    }
    for name in ("menu_name", "submenu_name"):
        if _text(document.get(name)):
            data[name] = _text(document.get(name))
    boot_defaults_update(data=data)


def host_put(fqdn: str, document: dict[str, Any], path: str, boot_names: set[str]) -> None:
    site_name, image_name, version_name = (_text(document.get(name)) for name in ("site", "image", "version"))
    site = Site.objects.filter(name=site_name).first() if site_name else None
    if site_name and site is None:
        raise Rejected(f"{path}/site: no site '{site_name}'")
    image = Image.objects.filter(name=image_name).first() if image_name else None
    if image_name and image is None:
        raise Rejected(f"{path}/image: no image '{image_name}'")
    version = None
    if image and version_name and version_name != LATEST:
        version = image_version_named(image=image, name=version_name)
        if version is None:
            raise Rejected(f"{path}/version: image {image_name} has no version '{version_name}'")
    data = {
        "fqdn": fqdn,
        "site": site,
        "image": image,
        "image_version": version,
        "debug": bool(_flag(document.get("debug"), f"{path}/debug")),
        "gpt": _flag(document.get("gpt"), f"{path}/gpt", nullable=True),
        "kexec": _flag(document.get("kexec"), f"{path}/kexec", nullable=True),
        "legacynet": bool(_flag(document.get("legacynet"), f"{path}/legacynet")),
        "volmgt": _text(document.get("volmgt")),
        "kopts": _text(document.get("kopts")),
    }
    interfaces = host_interfaces_from_document(document, path)
    existing = Host.objects.filter(fqdn=fqdn).first()
    if existing:
        host = host_services.host_update(host=existing, data=data, interfaces=interfaces)
    else:
        host = host_services.host_create(data=data, interfaces=interfaces)
    if _flag(document.get("build"), f"{path}/build"):
        host_enter_build(host=host)
    elif existing and existing.build:
        host_cancel_build(host=host)


def _mac(value: Any) -> str:
    """A hwaddr as the one normaliser writes it; an invalid one as given, for the interface's validation to name."""
    try:
        return normalise_mac(_text(value))
    except ValidationError:
        return _text(value)


def default_twin(entries: dict[str, Any]) -> str | None:
    """The entry of the original's `interface` map that `default` (the primary NIC) copies: the other entry with the
    same hwaddr, compared normalised (`AA-BB-…` is `aa:bb:…`); None when `default` stands alone. The one rule, for the
    import, the etcd tree and `/api/v1`'s interface writes."""
    default = entries.get("default")
    if not isinstance(default, dict) or not _mac(default.get("hwaddr")):
        return None
    return next(
        (name for name, values in sorted(entries.items()) if name != "default" and isinstance(values, dict)
         and _mac(values.get("hwaddr")) == _mac(default.get("hwaddr"))),
        None,
    )  # fmt: skip


def host_interfaces_from_document(document: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The original's `interface` map as NICs: `default` is the primary; a `default` with the same hwaddr as another
    entry is that entry (one NIC), without a twin it is a NIC named `default`. A host with only `dhcp` gets one NIC."""
    entries = document.get("interface") or {}
    if not isinstance(entries, dict):
        raise Rejected(f"{path}/interface: not a directory")
    twin = default_twin(entries)
    nics = []
    for name, values in sorted(entries.items()):
        if name == "default" and twin:
            continue
        nics.append(
            {
                "name": name,
                "mac": _mac(values.get("hwaddr")),
                "ip": _text(values.get("ip")) or None,
                "netmask": _text(values.get("netmask")) or None,
                "gateway": _text(values.get("gw")) or None,
                "primary": name == (twin or "default"),
            }
        )
    dhcp = document.get("dhcp") or {}
    if dhcp:
        mac = _mac(dhcp.get("hwaddr"))
        match = next((nic for nic in nics if nic["mac"] == mac), None)
        if match is None:
            nics.append({"name": "eth0" if not nics else f"dhcp{len(nics)}", "mac": mac, "dhcp": True,
                         "ip": _text(dhcp.get("ipv4")) or None, "primary": not nics})  # fmt: skip
        else:
            match["dhcp"] = True
    return nics

"""Writes of sites, subnets, hosts and interfaces. Every change goes through here (admin, APIs, importers).

A host has exactly one primary interface (its boot NIC) as soon as it has any: the first interface becomes primary,
marking another one primary moves the flag, and deleting the primary hands the flag to the next interface.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from dock2box.services import model_delete, model_update
from hosts.models import Host, Interface, Site, Subnet

SITE_FIELDS = [
    "name", "description", "domain", "dns_servers", "ntp_servers", "file_uri", "registry", "image", "boot_version",
    "pxe_menu", "registry_username", "registry_password", "root_password_hash", "ssh_authorized_keys",
]  # fmt: skip
SUBNET_FIELDS = ["network", "site", "description", "gateway", "vlan", "dns_servers", "dhcp", "reserved"]
# `build` and `status` are not here: build mode changes only through provisioning's build services.
HOST_FIELDS = [
    "fqdn", "site", "image", "image_version", "boot_version", "debug", "gpt", "kexec", "volmgt", "legacynet", "kopts",
    "pxe_menu", "serial", "uuid", "asset_tag", "labels",
]  # fmt: skip
INTERFACE_FIELDS = ["host", "name", "mac", "ip", "subnet", "netmask", "gateway", "dhcp", "primary"]


@transaction.atomic
def site_create(*, data: Mapping[str, Any]) -> Site:
    """Create a site."""
    return model_update(Site(), data=data, fields=SITE_FIELDS)


@transaction.atomic
def site_update(*, site: Site, data: Mapping[str, Any]) -> Site:
    """Change the given fields of a site."""
    return model_update(site, data=data, fields=SITE_FIELDS)


@transaction.atomic
def site_delete(*, site: Site) -> None:
    """Delete a site (refused while subnets or hosts belong to it)."""
    model_delete(site)


@transaction.atomic
def subnet_create(*, data: Mapping[str, Any]) -> Subnet:
    """Create a subnet."""
    return model_update(Subnet(), data=data, fields=SUBNET_FIELDS)


@transaction.atomic
def subnet_update(*, subnet: Subnet, data: Mapping[str, Any]) -> Subnet:
    """Change the given fields of a subnet."""
    return model_update(subnet, data=data, fields=SUBNET_FIELDS)


@transaction.atomic
def subnet_delete(*, subnet: Subnet) -> None:
    """Delete a subnet (refused while interfaces use it)."""
    model_delete(subnet)


@transaction.atomic
def host_create(*, data: Mapping[str, Any], interfaces: Sequence[Mapping[str, Any]] = ()) -> Host:
    """Create a host, with its interfaces if given (the first is primary unless one says so)."""
    host = model_update(Host(), data=data, fields=HOST_FIELDS)
    if interfaces:
        host_set_interfaces(host=host, interfaces=interfaces)
    return host


@transaction.atomic
def host_update(*, host: Host, data: Mapping[str, Any], interfaces: Sequence[Mapping[str, Any]] | None = None) -> Host:
    """Change the given fields of a host; with `interfaces`, replace its interfaces (matched by name)."""
    host = model_update(host, data=data, fields=HOST_FIELDS)
    if interfaces is not None:
        host_set_interfaces(host=host, interfaces=interfaces)
    return host


@transaction.atomic
def host_delete(*, host: Host) -> None:
    """Delete a host with its interfaces and builds."""
    model_delete(host)


def host_set_interfaces(*, host: Host, interfaces: Sequence[Mapping[str, Any]]) -> list[Interface]:
    """Make the host's interfaces exactly `interfaces` (matched by name); errors name the interface and field."""
    names = [str(item.get("name", "")) for item in interfaces]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationError({"interfaces": f"Interface {duplicates[0]} is listed twice."})
    primaries = [item for item in interfaces if item.get("primary")]
    if len(primaries) > 1:
        raise ValidationError({"interfaces": "Only one interface can be primary (the boot NIC)."})
    primary_name = primaries[0]["name"] if primaries else (names[0] if names else None)

    existing = {interface.name: interface for interface in host.interfaces.all()}
    host.interfaces.exclude(name__in=names).delete()
    host.interfaces.update(primary=False)
    saved: list[Interface] = []
    errors: list[str] = []
    for item in interfaces:
        interface = existing.get(item["name"]) or Interface(host=host)
        values = {**item, "host": host, "primary": item["name"] == primary_name}
        try:
            saved.append(model_update(interface, data=values, fields=INTERFACE_FIELDS))
        except ValidationError as error:
            errors.extend(f"{item['name']}: {message}" for message in _flatten(error))
    if errors:
        raise ValidationError({"interfaces": errors})
    return saved


@transaction.atomic
def interface_create(*, data: Mapping[str, Any]) -> Interface:
    """Add an interface to a host. The host's first interface is primary; a new primary takes the flag over."""
    host: Host = data["host"]
    has_primary = host.interfaces.filter(primary=True).exists()
    values = dict(data)
    if not has_primary:
        values["primary"] = True
    elif values.get("primary"):
        host.interfaces.update(primary=False)
    return model_update(Interface(), data=values, fields=INTERFACE_FIELDS)


@transaction.atomic
def interface_update(*, interface: Interface, data: Mapping[str, Any]) -> Interface:
    """Change an interface. Marking it primary moves the flag; un-marking the primary is refused."""
    was_primary = interface.primary
    if "host" in data and data["host"] != interface.host:
        raise ValidationError({"host": "An interface cannot move to another host; delete it and add it there."})
    if was_primary and data.get("primary") is False:
        raise ValidationError(
            {"primary": "A host needs exactly one primary interface: mark another one primary instead."}
        )
    if data.get("primary") and not was_primary:
        interface.host.interfaces.exclude(pk=interface.pk).update(primary=False)
    return model_update(interface, data=data, fields=INTERFACE_FIELDS)


@transaction.atomic
def interface_delete(*, interface: Interface) -> None:
    """Delete an interface; when it was primary, the host's next interface (by name) becomes primary."""
    host, was_primary = interface.host, interface.primary
    model_delete(interface)
    if was_primary:
        successor = host.interfaces.order_by("name").first()
        if successor:
            successor.primary = True
            successor.save(update_fields=["primary"])


def _flatten(error: ValidationError) -> list[str]:
    """Messages prefixed with their field: `mac: Another interface has this MAC.`"""
    if not hasattr(error, "error_dict"):
        return error.messages
    return [
        message if field == "__all__" else f"{field}: {message}"
        for field, messages in error.message_dict.items()
        for message in messages
    ]

"""Writes of sites, subnets, hosts and interfaces. Every change goes through here (admin, APIs, importers).

A host has exactly one primary interface (its boot NIC) as soon as it has any: the first interface becomes primary,
marking another one primary moves the flag, and deleting the primary hands the flag to the next interface.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from dock2box.changes import document, record_change
from dock2box.services import history_record, model_delete, model_update, secret_kept_at_home
from hosts.addressing import subnet_key
from hosts.csv_io import CsvProblem, HostRows, hosts_csv_parse
from hosts.models import Bmc, Host, Interface, Site, Subnet
from hosts.selectors import site_list
from images import services as image_services
from images.models import LATEST, ImageVersion
from images.selectors import image_list, image_version_named

SITE_FIELDS = [
    "name", "description", "domain", "dns_servers", "ntp_servers", "file_uri", "registry", "image", "boot_version",
    "pxe_menu", "secure_boot", "registry_username", "registry_password", "root_password_hash", "ssh_authorized_keys",
]  # fmt: skip
SUBNET_FIELDS = ["network", "site", "description", "gateway", "vlan", "dns_servers", "dhcp", "reserved"]
# `build` and `status` are not here: build mode changes only through provisioning's build services.
HOST_FIELDS = [
    "fqdn", "site", "image", "image_version", "boot_version", "debug", "gpt", "kexec", "secure_boot", "volmgt",
    "legacynet", "kopts", "pxe_menu", "serial", "uuid", "asset_tag", "labels",
]  # fmt: skip
INTERFACE_FIELDS = ["host", "name", "mac", "ip", "subnet", "netmask", "gateway", "dhcp", "primary"]
# The power fields of a BMC are not here: only the power services write them.
BMC_FIELDS = ["host", "protocol", "address", "port", "username", "password"]


def _site_documents(site_id: int | None, *, dependents: bool) -> set[str]:
    """A site's document; with `dependents` (a rename) also its hosts' and subnets' (they name their site)."""
    if site_id is None:
        return set()
    name = Site.objects.filter(pk=site_id).values_list("name", flat=True).first()
    if name is None:
        return set()
    documents = {document("sites", name)}
    if dependents:
        documents |= {
            document("host", fqdn) for fqdn in Host.objects.filter(site_id=site_id).values_list("fqdn", flat=True)
        }
        networks = Subnet.objects.filter(site_id=site_id).values_list("network", flat=True)
        documents |= {document("subnets", subnet_key(network)) for network in networks}
    return documents


def _subnet_documents(subnet_id: int | None) -> set[str]:
    network = Subnet.objects.filter(pk=subnet_id).values_list("network", flat=True).first() if subnet_id else None
    return {document("subnets", subnet_key(network))} if network else set()


def host_documents(host_id: int | None) -> set[str]:
    """A host's document and the `/hwaddr` entries of its MACs, as stored now."""
    if host_id is None:
        return set()
    fqdn = Host.objects.filter(pk=host_id).values_list("fqdn", flat=True).first()
    if fqdn is None:
        return set()
    macs = Interface.objects.filter(host_id=host_id).values_list("mac", flat=True)
    return {document("host", fqdn)} | {document("hwaddr", mac) for mac in macs}


@transaction.atomic
def site_create(*, data: Mapping[str, Any]) -> Site:
    """Create a site."""
    site = model_update(Site(), data=data, fields=SITE_FIELDS, history=True)
    record_change(_site_documents(site.pk, dependents=False))
    return site


@transaction.atomic
def site_update(*, site: Site, data: Mapping[str, Any]) -> Site:
    """Change the given fields of a site. A new registry without its password given again forgets the stored one: it
    is sent to the registry named, and only to it."""
    data = secret_kept_at_home(site, data, destination=["registry"], credential="registry_password")
    before = _site_documents(site.pk, dependents=True)
    site = model_update(site, data=data, fields=SITE_FIELDS, history=True)
    renamed = document("sites", site.name) not in before
    record_change(before | _site_documents(site.pk, dependents=renamed))
    return site


@transaction.atomic
def site_delete(*, site: Site) -> None:
    """Delete a site (refused while subnets or hosts belong to it)."""
    before = _site_documents(site.pk, dependents=False)
    model_delete(site, history=True)
    record_change(before)


@transaction.atomic
def subnet_create(*, data: Mapping[str, Any]) -> Subnet:
    """Create a subnet."""
    subnet = model_update(Subnet(), data=data, fields=SUBNET_FIELDS, history=True)
    record_change(_subnet_documents(subnet.pk))
    return subnet


@transaction.atomic
def subnet_update(*, subnet: Subnet, data: Mapping[str, Any]) -> Subnet:
    """Change the given fields of a subnet."""
    before = _subnet_documents(subnet.pk)
    subnet = model_update(subnet, data=data, fields=SUBNET_FIELDS, history=True)
    record_change(before | _subnet_documents(subnet.pk))
    return subnet


@transaction.atomic
def subnet_delete(*, subnet: Subnet) -> None:
    """Delete a subnet (refused while interfaces use it)."""
    before = _subnet_documents(subnet.pk)
    model_delete(subnet, history=True)
    record_change(before)


@transaction.atomic
def host_create(*, data: Mapping[str, Any], interfaces: Sequence[Mapping[str, Any]] = ()) -> Host:
    """Create a host, with its interfaces if given (the first is primary unless one says so)."""
    host = model_update(Host(), data=data, fields=HOST_FIELDS, history=True)
    if interfaces:
        host_set_interfaces(host=host, interfaces=interfaces)
    record_change(host_documents(host.pk))
    return host


@transaction.atomic
def host_update(*, host: Host, data: Mapping[str, Any], interfaces: Sequence[Mapping[str, Any]] | None = None) -> Host:
    """Change the given fields of a host; with `interfaces`, replace its interfaces (matched by name)."""
    before = host_documents(host.pk)
    host = model_update(host, data=data, fields=HOST_FIELDS, history=True)
    if interfaces is not None:
        host_set_interfaces(host=host, interfaces=interfaces)
    record_change(before | host_documents(host.pk))
    return host


@transaction.atomic
def host_delete(*, host: Host) -> None:
    """Delete a host with its interfaces, builds and the installer config templates scoped to it."""
    before = host_documents(host.pk)
    model_delete(host, history=True)
    record_change(before, everything=True)  # the boot catalogue holds the templates that went with it


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

    before = host_documents(host.pk)
    existing = {interface.name: interface for interface in host.interfaces.all()}
    described_before = _interfaces_described(existing.values())  # the loop below changes these objects
    host.interfaces.exclude(name__in=names).delete()
    host.interfaces.update(primary=False)
    saved: list[Interface] = []
    errors: list[ValidationError] = []
    for index, item in enumerate(interfaces):
        interface = existing.get(item["name"]) or Interface(host=host)
        values = {**item, "host": host, "primary": False}
        try:
            saved.append(model_update(interface, data=values, fields=INTERFACE_FIELDS))
        except ValidationError as error:
            errors.extend(_item_errors(index, str(item["name"]), error))
    if errors:
        raise ValidationError({"interfaces": errors})
    _primary_move(host=host, to=next((interface for interface in saved if interface.name == primary_name), None))
    described = _interfaces_described(saved)
    if described != described_before:
        history_record(obj=host, action="interfaces set", detail=described or "none")
    record_change(before | host_documents(host.pk))
    return saved


@transaction.atomic
def interface_create(*, data: Mapping[str, Any]) -> Interface:
    """Add an interface to a host. The host's first interface is primary; a new primary takes the flag over."""
    host: Host = data["host"]
    has_primary = host.interfaces.filter(primary=True).exists()
    interface = model_update(Interface(), data={**data, "primary": False}, fields=INTERFACE_FIELDS)
    _primary_move(host=host, to=interface if data.get("primary") or not has_primary else None)
    history_record(obj=host, action="interface added", detail=f"{interface.name} {interface.mac}")
    record_change(host_documents(host.pk))
    return interface


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
    before = host_documents(interface.host_id)
    interface = model_update(interface, data={**data, "primary": was_primary}, fields=INTERFACE_FIELDS)
    if data.get("primary") and not was_primary:
        _primary_move(host=interface.host, to=interface)
    history_record(obj=interface.host, action="interface changed", detail=f"{interface.name} {interface.mac}")
    record_change(before | host_documents(interface.host_id))
    return interface


@transaction.atomic
def interface_delete(*, interface: Interface) -> None:
    """Delete an interface; when it was primary, the host's next interface (by name) becomes primary."""
    host, was_primary = interface.host, interface.primary
    before = host_documents(host.pk)
    history_record(obj=host, action="interface removed", detail=f"{interface.name} {interface.mac}")
    model_delete(interface)
    if was_primary:
        _primary_move(host=host, to=None)
    record_change(before | host_documents(host.pk))


@transaction.atomic
def bmc_create(*, data: Mapping[str, Any]) -> Bmc:
    """Give a host its BMC (one per host)."""
    return model_update(Bmc(), data=data, fields=BMC_FIELDS, history=True)


@transaction.atomic
def bmc_update(*, bmc: Bmc, data: Mapping[str, Any]) -> Bmc:
    """Change the given fields of a BMC (its address, port, credentials). A new address or port without a password
    given again forgets the stored one: the next login would hand the new address the old password's hash."""
    data = secret_kept_at_home(bmc, data, destination=["address", "port"], credential="password")
    return model_update(bmc, data=data, fields=BMC_FIELDS, history=True)


@transaction.atomic
def bmc_delete(*, bmc: Bmc) -> None:
    """Forget a host's BMC: the portal no longer controls its power."""
    model_delete(bmc, history=True)


def _primary_move(*, host: Host, to: Interface | None) -> None:
    """The one place the primary flag moves: to `to` (the host's other interfaces lose it), or with `to` None to the
    host's first interface by name when none has it. A host has exactly one primary interface once it has any."""
    if to is None:
        if host.interfaces.filter(primary=True).exists():
            return
        to = host.interfaces.order_by("name").first()
        if to is None:
            return
    host.interfaces.exclude(pk=to.pk).update(primary=False)
    Interface.objects.filter(pk=to.pk).update(primary=True)
    to.primary = True


def _interfaces_described(interfaces: Iterable[Interface]) -> str:
    return ", ".join(
        f"{interface.name} {interface.mac} {interface.ip or 'dhcp'}{' (primary)' if interface.primary else ''}"
        for interface in sorted(interfaces, key=lambda interface: interface.name)
    )


def _item_errors(index: int, name: str, error: ValidationError) -> list[ValidationError]:
    """Each message of a list item's error, readable alone (`eth0: mac: Another interface has this MAC ...`) and
    carrying where it belongs (params `index`, `field`, `message`), so the API nests it as it nests its own
    serializer's errors: `{"interfaces": {"0": {"mac": [...]}}}`."""
    fields = error.message_dict.items() if hasattr(error, "error_dict") else [(NON_FIELD_ERRORS, error.messages)]
    return [
        _item_error(index=index, name=name, field=field, message=message)
        for field, messages in fields
        for message in messages
    ]


def _item_error(*, index: int, name: str, field: str, message: str) -> ValidationError:
    where = "" if field == NON_FIELD_ERRORS else f"{field}: "
    return ValidationError(
        "%(name)s: %(where)s%(message)s",
        code="item",
        params={"index": index, "name": name, "field": field, "message": message, "where": where},
    )


@transaction.atomic
def hosts_import_csv(*, text: str) -> tuple[int, int]:
    """Create or update the hosts of a CSV file (`hosts.csv_io`: one row per interface), all or nothing, through the
    same services and rules as every other write. A host named in the file gets exactly the file's interfaces. Any
    bad line and nothing is stored: the ValidationError names every one (`rows`, each message with its line number).
    Returns (created, updated)."""
    try:
        hosts, problems = hosts_csv_parse(text)
    except CsvProblem as error:
        raise ValidationError({"file": str(error)}) from None
    errors = [
        _line_error(line, NON_FIELD_ERRORS, message) for line, messages in problems.items() for message in messages
    ]
    created = updated = 0
    for rows in hosts:
        try:
            data = _csv_host_data(rows)
            interfaces = [values for _, values in rows.interfaces]
            existing = Host.objects.filter(fqdn=rows.fqdn).first()
            if existing is None:
                host_create(data=data, interfaces=interfaces)
                created += 1
            else:
                host_update(host=existing, data=data, interfaces=interfaces)
                updated += 1
        except ValidationError as error:
            errors.extend(_csv_errors(rows, error))
    if errors:
        raise ValidationError({"rows": sorted(errors, key=lambda error: (error.params or {})["index"])})
    return created, updated


def _csv_host_data(rows: HostRows) -> dict[str, Any]:
    columns = rows.columns
    errors: dict[str, str] = {}
    data: dict[str, Any] = {"fqdn": rows.fqdn, **{name: columns[name] for name in _CSV_TEXT if name in columns}}
    if "site" in columns:
        data["site"] = site_list().filter(name=columns["site"]).first() if columns["site"] else None
        if columns["site"] and data["site"] is None:
            errors["site"] = f"No site '{columns['site']}'."
    if "image" in columns:
        data["image"] = image_list().filter(name=columns["image"]).first() if columns["image"] else None
        if columns["image"] and data["image"] is None:
            errors["image"] = f"No image '{columns['image']}'."
    if "version" in columns:
        name = columns["version"]
        image = data.get("image")
        data["image_version"] = (
            image_version_named(image=image, name=name) if image and name not in ("", LATEST) else None
        )
        if image and name not in ("", LATEST) and data["image_version"] is None:
            errors["version"] = f"Image {image} has no version '{name}'."
    if errors:
        raise ValidationError(errors)
    return data


_CSV_TEXT = ["kopts", "labels", "serial", "asset_tag"]


def _line_error(line: int, field: str, message: str) -> ValidationError:
    return _item_error(index=line, name=f"line {line}", field=field, message=message)


def _csv_errors(rows: HostRows, error: ValidationError) -> list[ValidationError]:
    """A host's errors at the lines they come from: an interface's at its own line, the host's at its first."""
    found = []
    for field, errors in error.error_dict.items() if hasattr(error, "error_dict") else [(NON_FIELD_ERRORS, [error])]:
        for item in errors:
            params = item.params or {}
            if field == "interfaces" and "index" in params:
                found.append(_line_error(rows.interfaces[params["index"]][0], params["field"], params["message"]))
            else:
                found.extend(_line_error(rows.line, field, message) for message in item.messages)
    return found


def image_version_resolve_from_registry(*, version_id: int) -> ImageVersion:
    """Resolve a docker image version in its registry: the image's own, else the registry of a site that installs
    it by default, else of any site; with the credentials of the site that names that registry."""
    version = ImageVersion.objects.select_related("image").get(pk=version_id)
    registry = version.image.registry
    if not registry:
        site = Site.objects.filter(image=version.image).exclude(registry="").first() or (
            Site.objects.exclude(registry="").order_by("name").first()
        )
        registry = site.registry if site else ""
    credentials = Site.objects.filter(registry=registry).exclude(registry_username="").first()
    return image_services.image_version_resolve(
        version=version,
        registry=registry,
        username=credentials.registry_username if credentials else "",
        password=credentials.registry_password if credentials else "",
    )

"""Writes of what was seen booting: a known host's last seen; an unknown MAC recorded, registered as a host or
forgotten."""

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from dock2box.services import history_record, model_delete
from dock2box.timestamps import timestamp_write
from hosts.models import Host
from hosts.selectors import subnet_for_address
from hosts.services import host_create
from provisioning.catalogue.services import boot_defaults_get
from provisioning.models import DiscoveredHost

DISCOVERED_TRIM_EVERY = 100


DISCOVERED_FIELDS = ["uuid", "serial", "asset", "ip", "platform", "buildarch"]


DISCOVERED_LENGTHS = {
    field.name: field.max_length
    for field in DiscoveredHost._meta.concrete_fields
    if isinstance(field, models.CharField) and field.max_length
}


def boot_seen(*, host_id: int, last_seen: datetime | None, now: datetime) -> datetime | None:
    """Record a PXE boot of a known host whose "last seen" is `last_seen`: at most one write per interval, so a boot
    storm is not a write storm (and those of many hosts go out together: `provisioning.timestamps`). Returns the
    host's "last seen" after it."""
    interval = timedelta(seconds=settings.DOCK2BOX_LAST_SEEN_INTERVAL)
    if last_seen is None or now - last_seen >= interval:
        timestamp_write(Host, "last_seen", host_id, now)
        return now
    return last_seen


def discovered_host_record(*, mac: str, now: datetime, details: Mapping[str, str | None]) -> None:
    """Remember an unknown MAC that PXE-booted (first and last seen), coalescing writes like `boot_seen`."""
    interval = timedelta(seconds=settings.DOCK2BOX_LAST_SEEN_INTERVAL)
    known = DiscoveredHost.objects.filter(mac=mac).values_list("last_seen", flat=True).first()
    if known is not None and now - known < interval:
        return
    # What a booting host says of itself is kept only where it fits its column (uuid 64, buildarch 20, ...).
    values = {
        name: value
        for name, value in details.items()
        if name in DISCOVERED_FIELDS and (value is None or len(value) <= DISCOVERED_LENGTHS.get(name, len(value)))
    }
    if known is None:
        with contextlib.suppress(IntegrityError):  # a parallel boot of the same MAC recorded it first
            created = DiscoveredHost.objects.create(mac=mac, last_seen=now, **values)
            # Bounded: a flood of random MACs pushes out the oldest instead of growing the table without end (every
            # hundredth new MAC trims, so a boot request keeps its few queries).
            if created.pk % DISCOVERED_TRIM_EVERY == 0:
                DiscoveredHost.objects.filter(pk__lte=created.pk - settings.DOCK2BOX_DISCOVERED_MAX).delete()
    else:
        DiscoveredHost.objects.filter(mac=mac).update(last_seen=now, **values)


@transaction.atomic
def discovered_host_delete(*, discovered: DiscoveredHost) -> None:
    """Forget a MAC that PXE-booted unknown (it is recorded again at its next boot)."""
    model_delete(discovered)


@transaction.atomic
def discovered_host_register(*, discovered: DiscoveredHost) -> Host:
    """Turn a discovered MAC into a host named after it (`525400123456.<domain>`), with its NIC as primary.

    The domain and site come from the subnet holding the address it booted with, else the global defaults. That
    address becomes the NIC's own where an interface may hold it; one it may not (another host's, reserved, the
    gateway, the network or broadcast address: a DHCP lease says nothing of the plan) is left out, and the history
    says why. Raises ValidationError when the host cannot be made (its name is taken).
    """
    subnet = subnet_for_address(address=discovered.ip)
    site = subnet.site if subnet else None
    domain = (site.domain if site and site.domain else boot_defaults_get().domain) or "localdomain"
    try:
        uuid = UUID(discovered.uuid) if discovered.uuid else None
    except ValueError:
        uuid = None
    data = {
        "fqdn": f"{discovered.mac.replace(':', '')}.{domain}",
        "site": site,
        "serial": discovered.serial,
        "uuid": uuid,
        "asset_tag": discovered.asset,
    }
    nic = {"name": "eth0", "mac": discovered.mac, "ip": discovered.ip if subnet else None}
    detail = f"from the discovered MAC {discovered.mac}"
    try:
        with transaction.atomic():
            host = host_create(data=data, interfaces=[nic])
    except ValidationError as error:
        if not nic["ip"] or "ip" not in " ".join(error.messages):
            raise
        host = host_create(data=data, interfaces=[{**nic, "ip": None}])
        detail += f"; its address {discovered.ip} left out: {'; '.join(error.messages)}"
    history_record(obj=host, action="registered", detail=detail[:500])
    discovered.delete()
    return host

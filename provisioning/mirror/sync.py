"""The etcd mirror: drain the outbox, reconcile the whole tree, report. The database is the source of truth.

A document's sync reads what etcd holds under its directory and writes the difference to what the database says it
should hold, so syncing is idempotent: a drain that dies half way (worker killed, etcd gone) is simply run again.
Drains are serialised by a row lock on `MirrorState`, so an older projection never overwrites a newer one; outbox
rows are deleted in the transaction that wrote their documents, so a change leaves the outbox only once it is in etcd.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Prefetch, Q
from django.utils import timezone

from dock2box.models import OutboxEntry
from hosts.addressing import subnet_key, subnet_network
from hosts.models import Host, Interface, Site, Subnet
from images.models import NEWEST_FIRST, Image, ImageVersion
from provisioning.mirror import projection
from provisioning.mirror.store import DocumentChange, EtcdUnavailable, Store, stores_for
from provisioning.models import BootDefaults, MirrorState, PxeMenu

logger = logging.getLogger("dock2box.mirror")
BATCH = 500


class MirrorBusy(Exception):
    """Another drain holds the mirror; it drains everything, this one may retry shortly."""


@dataclass
class SyncReport:
    documents: int = 0
    changed: list[DocumentChange] = field(default_factory=list)
    operations: int = 0

    def add(self, other: "SyncReport") -> None:
        self.documents += other.documents
        self.changed += other.changed
        self.operations += other.operations


def directory(name: str) -> str:
    """`host/web01.example.com` → `<prefix>/host/web01.example.com/`."""
    return f"{settings.DOCK2BOX_ETCD_PREFIX}/{name}/"


def desired_documents(names: Iterable[str] | None) -> dict[str, dict[str, str]]:
    """What etcd should hold for each document (full keys); `None` means every document. Empty = delete it."""
    wanted: dict[str, list[str]] = {kind: [] for kind in projection.KINDS}
    result: dict[str, dict[str, str]] = {}
    for name in names or []:
        kind, _, key = name.partition("/")
        if kind in wanted:
            wanted[kind].append(key)
            result[name] = {}
    every = names is None

    def keep(name: str, tree: dict[str, str]) -> None:
        base = directory(name)
        result[name] = {base + key: value for key, value in tree.items()}

    if every or wanted["host"] or wanted["hwaddr"]:
        hosts = Host.objects.select_related("site", "image", "image_version").prefetch_related(
            Prefetch("interfaces", queryset=Interface.objects.select_related("subnet").order_by("name"))
        )
        if not every:
            hosts = hosts.filter(Q(fqdn__in=wanted["host"]) | Q(interfaces__mac__in=wanted["hwaddr"])).distinct()
        for host in hosts:
            interfaces = list(host.interfaces.all())
            if every or host.fqdn in wanted["host"]:
                tree = projection.host_tree(
                    host, interfaces, image=host.image.name if host.image else "",
                    version=host.image_version.version if host.image_version else "",
                    site=host.site.name if host.site else "",
                )  # fmt: skip
                keep(f"host/{host.fqdn}", tree)
            for interface in interfaces:
                if every or interface.mac in wanted["hwaddr"]:
                    keep(f"hwaddr/{interface.mac}", projection.hwaddr_tree(interface, host.fqdn))
    if every or wanted["image"]:
        images = Image.objects.select_related("boot_version__image").prefetch_related(
            Prefetch("versions", queryset=ImageVersion.objects.order_by(*NEWEST_FIRST))
        )
        for image in images if every else images.filter(name__in=wanted["image"]):
            bootstrap = image.boot_version.image.name if image.boot_version else ""
            keep(
                f"image/{image.name}",
                projection.image_tree(image, list(image.versions.all()), bootstrap_image=bootstrap),
            )
    if every or wanted["subnets"]:
        subnets = Subnet.objects.select_related("site")
        if not every:
            subnets = subnets.filter(network__in=[subnet_network(key) for key in wanted["subnets"]])
        for subnet in subnets:
            keep(f"subnets/{subnet_key(subnet.network)}", projection.subnet_tree(subnet, site=subnet.site.name))
    if every or wanted["sites"]:
        for site in Site.objects.all() if every else Site.objects.filter(name__in=wanted["sites"]):
            keep(f"sites/{site.name}", projection.site_tree(site))
    if every or "default" in result:
        defaults = BootDefaults.objects.select_related("boot_version__image").filter(pk=1).first() or BootDefaults()
        menu = defaults.pxe_menu and PxeMenu.objects.prefetch_related("items").get(pk=defaults.pxe_menu.pk)
        keep("default", projection.default_tree(defaults, menu, bootstrap=defaults.boot_version))
    return result


def _changes(desired: dict[str, dict[str, str]], current: dict[str, str]) -> list[DocumentChange]:
    """Group what etcd holds by document and pair it with what it should hold; equal documents are left out."""
    held: dict[str, dict[str, str]] = {name: {} for name in desired}
    base = f"{settings.DOCK2BOX_ETCD_PREFIX}/"
    for key, value in current.items():
        kind, _, rest = key[len(base) :].partition("/")
        name = "default" if kind == "default" else f"{kind}/{rest.partition('/')[0]}"
        held.setdefault(name, {})[key] = value
    changes = [
        DocumentChange(directory(name), held[name], desired.get(name, {}))
        for name in sorted(held)
        if held[name] != desired.get(name, {})
    ]
    return changes


def sync_documents(stores: list[Store], names: set[str], *, dry_run: bool = False) -> SyncReport:
    """Make each named document in every store equal to its projection."""
    report = SyncReport(documents=len(names))
    desired = desired_documents(names)
    for store in stores:
        current = store.read([directory(name) for name in sorted(names)])
        changes = _changes(desired, current)
        report.changed += changes
        if not dry_run:
            report.operations += store.write(changes)
    return report


def reconcile(
    stores: list[Store], *, dry_run: bool = False, progress: Callable[[str], None] | None = None
) -> SyncReport:
    """Compare the whole tree with the database and repair every difference, stale documents included."""
    report = SyncReport()
    desired = desired_documents(None)
    report.documents = len(desired)
    roots = [f"{settings.DOCK2BOX_ETCD_PREFIX}/{kind}/" for kind in projection.KINDS]
    for store in stores:
        current = store.read(roots)
        changes = _changes(desired, current)
        report.changed += changes
        if progress:
            progress(f"{store.name}: {len(desired)} documents, {len(current)} keys read, {len(changes)} to change")
        if not dry_run:
            report.operations += store.write(changes)
    if not dry_run:
        mirror_state_success()
    return report


def outbox_drain(stores: list[Store] | None = None, *, wait: bool = False) -> SyncReport:
    """Sync every document waiting in the outbox, in batches, each in its own transaction under the mirror lock.

    Raises MirrorBusy when another drain holds the lock (unless `wait`), EtcdUnavailable when etcd fails; in both
    cases the outbox keeps what is not yet in etcd.
    """
    stores = stores if stores is not None else mirror_stores()
    report = SyncReport()
    while True:
        try:
            with transaction.atomic():
                state = _lock(wait)
                entries = list(OutboxEntry.objects.order_by("id")[:BATCH])
                if not entries:
                    break
                batch = sync_documents(stores, {entry.document for entry in entries})
                OutboxEntry.objects.filter(id__in=[entry.id for entry in entries]).delete()
                state.last_success, state.last_error = timezone.now(), ""
                state.save(update_fields=["last_success", "last_error"])
            report.add(batch)
        except EtcdUnavailable as error:
            mirror_state_error(str(error))
            raise
    return report


def _lock(wait: bool) -> MirrorState:
    MirrorState.objects.get_or_create(pk=1)
    try:
        query = MirrorState.objects.select_for_update(nowait=not wait)
        return query.get(pk=1)
    except DatabaseError as error:
        raise MirrorBusy from error


def mirror_stores() -> list[Store]:
    return stores_for(settings.DOCK2BOX_ETCD_URL, settings.DOCK2BOX_ETCD_API, settings.DOCK2BOX_ETCD_TIMEOUT)


def mirror_state_success() -> None:
    MirrorState.objects.update_or_create(pk=1, defaults={"last_success": timezone.now(), "last_error": ""})


def mirror_state_error(message: str) -> None:
    logger.warning("etcd mirror: %s", message)
    MirrorState.objects.update_or_create(pk=1, defaults={"last_error": message[:2000], "last_error_at": timezone.now()})


def diff_lines(changes: Iterable[DocumentChange]) -> list[str]:
    """A readable diff: `+ key = value` (new), `~ key = value (was old)`, `- key` (stale)."""
    lines = []
    for change in changes:
        for key, value in sorted(change.puts.items()):
            was = change.current.get(key)
            lines.append(f"+ {key} = {value!r}" if was is None else f"~ {key} = {value!r} (was {was!r})")
        lines += [f"- {key}" for key in change.deletes]
    return lines


def nest(keys: dict[str, str], prefix: str) -> dict[str, Any]:
    """Flat etcd keys under `prefix` as etcdtool's nested JSON: directories are objects, leaves strings."""
    tree: dict[str, Any] = {}
    for key, value in sorted(keys.items()):
        node = tree
        *parents, leaf = key[len(prefix) :].strip("/").split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def export_tree() -> dict[str, Any]:
    """The mirrored tree as etcdtool exports it, relative to the prefix, as the database projects it."""
    keys = {key: value for document in desired_documents(None).values() for key, value in document.items()}
    return nest(keys, settings.DOCK2BOX_ETCD_PREFIX)


def read_tree(store: Store, prefix: str) -> dict[str, Any]:
    """An original-layout tree as a live etcd holds it under `prefix`, nested like an etcdtool export."""
    roots = [f"{prefix}/{kind}/" for kind in projection.KINDS]
    return nest(store.read(roots), prefix)

"""Writes of boot defaults, PXE menus and builds. Build mode changes only through here."""

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from dock2box.actors import actor_current
from dock2box.changes import document, record_change
from dock2box.services import history_record, model_delete, model_update
from hosts.choices import HostStatus, PowerAction, PowerState
from hosts.models import Bmc, Host, Site
from hosts.selectors import subnet_for_address
from hosts.services import host_create, host_documents
from images import services as image_services
from images.models import ImageVersion
from provisioning import bmc as bmc_client
from provisioning.bmc import BmcAccess, BmcError
from provisioning.choices import BuildStage, BuildState
from provisioning.configs import host_image_version, host_install_problem
from provisioning.metrics import POWER_ACTIONS
from provisioning.models import BootDefaults, BootTemplate, Build, BuildEvent, DiscoveredHost, PxeMenu, PxeMenuItem
from provisioning.selectors import InstallerBuild, build_for_token
from provisioning.timestamps import timestamp_write

logger = logging.getLogger("dock2box.builds")
T = TypeVar("T")
MENU_FIELDS = ["name", "title", "timeout", "default_item", "theme"]
MENU_ITEM_FIELDS = ["menu", "key", "label", "commands", "position"]
BOOT_DEFAULTS_FIELDS = [
    "pxe_menu", "menu_timeout", "build_timeout", "submenu_timeout", "menu_name", "submenu_name", "boot_version",
    "domain",
]  # fmt: skip


DISCOVERED_TRIM_EVERY = 100
DISCOVERED_FIELDS = ["uuid", "serial", "asset", "ip", "platform", "buildarch"]
DISCOVERED_LENGTHS = {
    field.name: field.max_length
    for field in DiscoveredHost._meta.concrete_fields
    if isinstance(field, models.CharField) and field.max_length
}
MAX_EVENT_MESSAGE = 16384


def build_token_new() -> str:
    """A fresh build token: 256 bits from `secrets`, URL-safe."""
    return secrets.token_urlsafe(32)


@transaction.atomic
def pxe_menu_create(*, data: Mapping[str, Any]) -> PxeMenu:
    """Create a PXE menu."""
    saved = model_update(PxeMenu(), data=data, fields=MENU_FIELDS, history=True)
    record_change({document("default")})  # menus and defaults show in /default
    return saved


@transaction.atomic
def pxe_menu_update(*, menu: PxeMenu, data: Mapping[str, Any]) -> PxeMenu:
    """Change the given fields of a PXE menu."""
    saved = model_update(menu, data=data, fields=MENU_FIELDS, history=True)
    record_change({document("default")})  # menus and defaults show in /default
    return saved


@transaction.atomic
def pxe_menu_delete(*, menu: PxeMenu) -> None:
    """Delete a PXE menu with its items (refused while a site or host uses it)."""
    model_delete(menu, history=True)
    record_change({document("default")})


@transaction.atomic
def pxe_menu_item_create(*, data: Mapping[str, Any]) -> PxeMenuItem:
    """Add an item to a PXE menu."""
    saved = model_update(PxeMenuItem(), data=data, fields=MENU_ITEM_FIELDS, history=True)
    record_change({document("default")})  # menus and defaults show in /default
    return saved


@transaction.atomic
def pxe_menu_item_update(*, item: PxeMenuItem, data: Mapping[str, Any]) -> PxeMenuItem:
    """Change the given fields of a PXE menu item."""
    saved = model_update(item, data=data, fields=MENU_ITEM_FIELDS, history=True)
    record_change({document("default")})  # menus and defaults show in /default
    return saved


@transaction.atomic
def pxe_menu_item_delete(*, item: PxeMenuItem) -> None:
    """Delete a PXE menu item."""
    model_delete(item, history=True)
    record_change({document("default")})


def boot_defaults_get() -> BootDefaults:
    """The one BootDefaults row, created with its defaults on first use."""
    defaults, _ = BootDefaults.objects.get_or_create(pk=1)
    return defaults


@transaction.atomic
def boot_defaults_update(*, data: Mapping[str, Any]) -> BootDefaults:
    """Change the given global boot defaults."""
    saved = model_update(boot_defaults_get(), data=data, fields=BOOT_DEFAULTS_FIELDS, history=True)
    record_change({document("default")})  # menus and defaults show in /default
    return saved


def host_build_check(*, host: Host, version_id: int | None = None) -> None:
    """Refuse (ValidationError on `build`, naming the host and the reason) build mode for a host that cannot install:
    no interface, no image or version, no registry or file for it, no boot environment."""
    problem = host_install_problem(host=host, version_id=version_id)
    if problem:
        raise ValidationError({"build": f"Build mode refused for {host.fqdn}: {problem}."}, code="not_installable")


@transaction.atomic
def host_enter_build(*, host: Host, version_id: int | None = None) -> Build:
    """Put a host in build mode: it installs at its next PXE boot. Idempotent: an open build is returned as is.

    Refused as `host_build_check` says when the host cannot install. `version_id` is a version picked by hand.
    """
    host = Host.objects.select_for_update().get(pk=host.pk)
    build = host.builds.select_for_update().filter(state__in=[BuildState.PENDING, BuildState.RUNNING]).first()
    if build is None:
        host_build_check(host=host, version_id=version_id)
        build = Build.objects.create(
            host=host,
            token=build_token_new(),
            report_token=build_token_new(),
            last_activity=timezone.now(),
            image_version_id=version_id,
            started_by=actor_current()[:200],
        )
        # An earlier install's system has not reported: its credential is void now that the disk is to be rewritten.
        host.builds.exclude(pk=build.pk).filter(report_token__isnull=False).update(report_token=None)
        history_record(obj=host, action="build mode entered", detail=f"build #{build.pk}")
    if not host.build:
        host.build = True
        host.save(update_fields=["build", "updated"])
        record_change(host_documents(host.pk))
    return build


@transaction.atomic
def host_cancel_build(*, host: Host) -> Build | None:
    """Take a host out of build mode; its open build is cancelled and its token voided.

    A host whose installer was already running is marked failed: its disk may be half written.
    """
    host = Host.objects.select_for_update().get(pk=host.pk)
    build = host.builds.select_for_update().filter(state__in=[BuildState.PENDING, BuildState.RUNNING]).first()
    fields = ["build", "updated"]
    if build is not None:
        history_record(obj=host, action="build mode cancelled", detail=f"build #{build.pk} ({build.state})")
        if build.state == BuildState.RUNNING:
            host.status = HostStatus.FAILED
            fields.append("status")
        build.state = BuildState.CANCELLED
        build.token = build.report_token = None
        build.finished = timezone.now()
        build.save(update_fields=["state", "token", "report_token", "finished"])
    host.build = False
    host.save(update_fields=fields)
    record_change(host_documents(host.pk))
    return build


def _token_idle() -> timedelta:
    return timedelta(seconds=settings.DOCK2BOX_BUILD_TOKEN_IDLE)


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


def build_token_for_boot(
    *,
    host: Host,
    build_id: int | None,
    token: str | None,
    last_activity: datetime | None,
    first_boot: datetime | None,
    now: datetime,
) -> tuple[str, datetime]:
    """A token the installer of a host in build mode can use for the whole idle expiry, and until when a boot may be
    handed it without this being asked again.

    The open build's token while it is fresh; touched when half its idle time is gone (so a late boot is not
    stranded); a fresh token when it expired; a new build when the host is in build mode without one. The build's
    first PXE boot is recorded (power-on, as near as the portal sees it), in the same statement as any other write.
    """
    idle = _token_idle()
    if build_id is None:
        build = host_enter_build(host=host)
        build_first_boot_record(build_id=build.pk, now=now)
        return str(build.token), now + idle / 2
    first = {} if first_boot else {"first_boot": now}
    if token and (until := build_token_until(last_activity=last_activity, now=now)):
        if first:
            build_first_boot_record(build_id=build_id, now=now)
        return token, until
    if token and last_activity and now - last_activity < idle:
        Build.objects.filter(pk=build_id).update(last_activity=now, **first)
        return token, now + idle / 2
    fresh = build_token_new()  # a fresh start: the new token binds to whichever installer uses it first
    Build.objects.filter(pk=build_id).update(token=fresh, last_activity=now, client_address=None, **first)
    return fresh, now + idle / 2


def build_token_until(*, last_activity: datetime | None, now: datetime) -> datetime | None:
    """Until when an open build's token may be handed to a boot as it is (None: it is due to be touched or renewed,
    which `build_token_for_boot` does)."""
    half = _token_idle() / 2
    return last_activity + half if last_activity and now - last_activity < half else None


def build_first_boot_record(*, build_id: int, now: datetime) -> None:
    """Record a build's first PXE boot, unless one was recorded already."""
    timestamp_write(Build, "first_boot", build_id, now, only_unset=True)


class InstallerRefused(Exception):
    """A request with a build token that the build does not grant: answered 403 with this message."""


class EventLimitReached(Exception):
    """A build has DOCK2BOX_BUILD_EVENTS_MAX events: more progress is refused (429); `done` and `failed` never are."""


def build_for_installer(*, token: str, now: datetime, client: str, fetch: bool) -> InstallerBuild:
    """The open build a token opens (with its host's interfaces), if it is valid and fresh and the request may use
    it, marking its use.

    The first config fetch or event binds the build to the client's address (its secrets are handed to that client
    only); a request from another address is refused and counted on the build. A config fetch is refused once the
    installer has begun writing the bootloader: it has no more use for the config. Raises InstallerRefused.
    """
    found = build_for_token(token=token)
    if found is None or not found.build.host.build:
        raise InstallerRefused("Unknown or expired build token, or the host left build mode.")
    build = found.build
    if build.last_activity is None or now - build.last_activity >= _token_idle():
        raise InstallerRefused("Unknown or expired build token, or the host left build mode.")
    if build.client_address is None:
        bound = Build.objects.filter(pk=build.pk, client_address__isnull=True).update(client_address=client)
        build.client_address = (
            client if bound else Build.objects.values_list("client_address", flat=True).get(pk=build.pk)
        )
    if build.client_address != client:
        what = "config fetch" if fetch else "event"
        note = f"{now:%Y-%m-%d %H:%M:%S} {what} from {client} refused: the build is bound to {build.client_address}"
        Build.objects.filter(pk=build.pk).update(refusals=F("refusals") + 1, last_refusal=note[:200])
        logger.warning("build %s: %s", build.pk, note)
        raise InstallerRefused("This build is bound to the installer that first used its token.")
    if fetch and build.bootloader_started is not None:
        raise InstallerRefused("The install is past its config: the bootloader is being written.")
    # Single-statement writes (no transaction round trips): this runs on every config fetch and event.
    if build.state == BuildState.PENDING:
        build.state, build.started, build.last_activity = BuildState.RUNNING, now, now
        if Build.objects.filter(pk=build.pk, state=BuildState.PENDING).update(
            state=build.state, started=now, last_activity=now
        ):
            # Still in build mode: a cancel that committed meanwhile keeps the host's status it set.
            Host.objects.filter(pk=build.host_id, build=True).update(status=HostStatus.BUILDING)
            build.host.status = HostStatus.BUILDING
    elif now - build.last_activity >= timedelta(seconds=settings.DOCK2BOX_LAST_SEEN_INTERVAL):
        # Coalesced like the last-seen write: the idle expiry (hours) and the stalled mark (minutes) do not need a
        # write per request, and an installer retrying its fetch in a loop is not a write loop.
        build.last_activity = now
        timestamp_write(Build, "last_activity", build.pk, now)
    return found


def build_version_pin(*, build: Build) -> None:
    """Record on the build the image version its installer is given, at its first config fetch: the build's page
    shows it, and the installer's later fetches (a retry) install that version even if a newer one is published."""
    if build.image_version_id is not None:
        return
    version = host_image_version(host=build.host)
    if version is not None and Build.objects.filter(pk=build.pk, image_version__isnull=True).update(
        image_version=version
    ):
        build.image_version = version


@transaction.atomic
def build_event_record(*, build: Build, stage: str, progress: int | None, message: str, now: datetime) -> BuildEvent:
    """Record an installer's progress; `done` and `failed` end the build and take the host out of build mode.

    The first `bootloader` event marks the moment the disk may boot on its own: from then on the boot path sends
    the host to its disk, even if `done` never arrives (see `build_close_unconfirmed`).
    """
    if stage not in (BuildStage.DONE, BuildStage.FAILED) and (
        build.events.count() >= settings.DOCK2BOX_BUILD_EVENTS_MAX
    ):
        raise EventLimitReached(f"This build has {settings.DOCK2BOX_BUILD_EVENTS_MAX} events, its limit.")
    # A log tail may carry any byte a tool printed; NUL is the one PostgreSQL cannot store.
    message = message[:MAX_EVENT_MESSAGE].replace("\x00", "\N{REPLACEMENT CHARACTER}")
    event = BuildEvent(build=build, stage=stage, progress=progress, message=message)
    event.full_clean()
    event.save()
    if stage == BuildStage.BOOTLOADER and build.bootloader_started is None:
        build.bootloader_started = now
        build.save(update_fields=["bootloader_started"])
        # From now on a PXE boot of this host boots its disk: no cached script may say otherwise.
        record_change(host_documents(build.host_id))
    if stage in (BuildStage.DONE, BuildStage.FAILED):
        succeeded = stage == BuildStage.DONE
        build.state = BuildState.DONE if succeeded else BuildState.FAILED
        build.token, build.finished = None, now
        if not succeeded:
            build.report_token = None  # nothing was installed that could report
        # Only an open build ends here: one cancelled or closed meanwhile (an operator, the boot path) stays as it was,
        # and so does its host; the event is kept for the record.
        if Build.objects.filter(pk=build.pk, state__in=[BuildState.PENDING, BuildState.RUNNING]).update(
            state=build.state, token=None, report_token=build.report_token, finished=now
        ):
            Host.objects.filter(pk=build.host_id).update(
                build=False, status=HostStatus.INSTALLED if succeeded else HostStatus.FAILED, updated=now,
                **_installed(now if succeeded else None),
            )  # fmt: skip
            history_record(
                obj=build.host, action="installed" if succeeded else "install failed",
                detail=f"build #{build.pk}: {message.splitlines()[0] if message else stage}",
            )  # fmt: skip
            record_change(host_documents(build.host_id))
    return event


def _installed(when: datetime | None) -> dict[str, Any]:
    """A host's deployment fields as an install ends: the first-boot report of the new system is awaited."""
    return {"installed": when, "deployed_digest": "", "boot_seconds": None}


class BootReportRefused(Exception):
    """A first-boot report with a credential that is unknown, used or void: answered 403."""


@transaction.atomic
def build_boot_report(*, report_token: str, digest: str, detail: str, now: datetime) -> Build:
    """The installed system's first-boot report: the credential is used up, the build records when and what booted,
    and the host is deployed (unless it was put in build mode again meanwhile).

    A build still open after writing its bootloader (its `done` was lost and the disk booted without a PXE boot in
    between) ends `done` here: the system that booted is the proof. Raises BootReportRefused.
    """
    build = (
        Build.objects.select_for_update().select_related("host").filter(report_token=report_token).first()
        if report_token
        else None
    )
    reportable = build is not None and (
        build.state in (BuildState.DONE, BuildState.UNCONFIRMED)
        or (build.is_open and build.bootloader_started is not None)
    )
    if build is None or not reportable:
        raise BootReportRefused("Unknown, used or void first-boot credential.")
    assert build is not None
    confirmed = build.is_open
    if confirmed:
        build.state, build.token, build.finished = BuildState.DONE, None, now
    build.report_token, build.booted, build.booted_digest = None, now, digest
    build.save(update_fields=["state", "token", "finished", "report_token", "booted", "booted_digest"])
    seconds = int((now - (build.first_boot or build.started or build.created)).total_seconds())
    message = f"first boot reported {seconds} s after power-on: {digest or 'no digest'}; {detail}"
    BuildEvent.objects.create(build=build, stage=BuildStage.BOOTED, message=message[:MAX_EVENT_MESSAGE])
    fields: dict[str, Any] = {"status": HostStatus.DEPLOYED, "deployed_digest": digest, "boot_seconds": seconds}
    hosts = Host.objects.filter(pk=build.host_id)
    if confirmed:  # this very build held the host in build mode
        fields |= {"build": False, "installed": now}
    else:  # put in build mode again since: it stays as it is
        hosts = hosts.filter(build=False)
    if hosts.update(updated=now, **fields):
        history_record(obj=build.host, action="deployed", detail=f"build #{build.pk}: booted {digest}")
        record_change(host_documents(build.host_id))
    return build


@transaction.atomic
def build_close_unconfirmed(*, build_id: int, now: datetime) -> bool:
    """Close an open build whose installer began writing the bootloader but whose `done` never arrived.

    Called by the boot path when such a host PXE-boots again: it boots its disk instead of a second install. The build
    ends `unconfirmed` (token void, host out of build mode) until the installed system reports or an operator
    decides. False when the build was closed meanwhile (a late `done`, a cancel): nothing changes then.
    """
    build = (
        Build.objects.select_for_update()
        .filter(pk=build_id, state__in=[BuildState.PENDING, BuildState.RUNNING], bootloader_started__isnull=False)
        .first()
    )
    if build is None:
        return False
    build.state, build.token, build.finished = BuildState.UNCONFIRMED, None, now
    build.save(update_fields=["state", "token", "finished"])
    BuildEvent.objects.create(
        build=build, stage=BuildStage.DONE, message="closed unconfirmed: the host booted again after writing its "
        "bootloader without reporting done; it boots its disk"
    )  # fmt: skip
    Host.objects.filter(pk=build.host_id).update(
        build=False, status=HostStatus.UNCONFIRMED, updated=now, **_installed(now)
    )
    history_record(
        obj=build.host, action="installed, unconfirmed", detail=f"build #{build.pk}: booted again without done"
    )
    record_change(host_documents(build.host_id))
    return True


@transaction.atomic
def build_install_chosen(*, host: Host, version_id: int) -> Build:
    """A version picked by hand in the boot menu: build mode with that version for this build (the pick is a PXE boot,
    the build's first unless it had one)."""
    build = host_enter_build(host=host, version_id=version_id)
    build.image_version_id = version_id
    build.first_boot = build.first_boot or timezone.now()
    build.save(update_fields=["image_version", "first_boot"])
    record_change(host_documents(host.pk))  # the host's boot script installs that version now
    return build


TEMPLATE_FIELDS = ["name", "kind", "content", "host", "image", "site"]


@transaction.atomic
def boot_template_create(*, data: Mapping[str, Any]) -> BootTemplate:
    """Create a kickstart, preseed or cloud-init template."""
    return model_update(BootTemplate(), data=data, fields=TEMPLATE_FIELDS, history=True)


@transaction.atomic
def boot_template_update(*, template: BootTemplate, data: Mapping[str, Any]) -> BootTemplate:
    """Change the given fields of a template."""
    return model_update(template, data=data, fields=TEMPLATE_FIELDS, history=True)


@transaction.atomic
def boot_template_delete(*, template: BootTemplate) -> None:
    """Delete a template."""
    model_delete(template, history=True)


@transaction.atomic
def build_delete(*, build: Build) -> None:
    """Delete a build and its events; an open one is cancelled first, so its host leaves build mode with it."""
    if build.is_open:
        host_cancel_build(host=build.host)
    Build.objects.filter(pk=build.pk).delete()


@transaction.atomic
def discovered_host_delete(*, discovered: DiscoveredHost) -> None:
    """Forget a MAC that PXE-booted unknown (it is recorded again at its next boot)."""
    model_delete(discovered)


@transaction.atomic
def discovered_host_register(*, discovered: DiscoveredHost) -> Host:
    """Turn a discovered MAC into a host named after it (`525400123456.<domain>`), with its NIC as primary.

    The domain and site come from the subnet holding the address it booted with, else the global defaults.
    """
    subnet = subnet_for_address(address=discovered.ip)
    site = subnet.site if subnet else None
    domain = (site.domain if site and site.domain else boot_defaults_get().domain) or "localdomain"
    try:
        uuid = UUID(discovered.uuid) if discovered.uuid else None
    except ValueError:
        uuid = None
    host = host_create(
        data={
            "fqdn": f"{discovered.mac.replace(':', '')}.{domain}",
            "site": site,
            "serial": discovered.serial,
            "uuid": uuid,
            "asset_tag": discovered.asset,
        },
        interfaces=[{"name": "eth0", "mac": discovered.mac, "ip": discovered.ip if subnet else None}],
    )
    history_record(obj=host, action="registered", detail=f"from the discovered MAC {discovered.mac}")
    discovered.delete()
    return host


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


# Power control. A request validates and queues (one action at a time per host: a second one is refused while the
# first runs); `power_apply` runs in the worker and records its outcome on the BMC and in the host's history.
_POWER_LABELS = dict(PowerAction.choices)


def _power_stale_after() -> timedelta:
    """A pending action older than this was lost (its worker died): a new one may start."""
    wait = settings.DOCK2BOX_POWER_WAIT
    return timedelta(seconds=(settings.DOCK2BOX_POWER_RETRIES + 1) * (2 * wait + 30))


def power_request(*, host: Host, action: str) -> Bmc:
    """Queue a power action (`PowerAction`) for a host: its BMC is asked in the worker (`power_apply`).

    Refused (ValidationError on `power`) for a host without a BMC or with an action still running, and a Reinstall
    as build mode would be (`host_build_check`), before anything is queued.
    """
    with transaction.atomic():
        bmc = Bmc.objects.select_for_update().select_related("host").filter(host_id=host.pk).first()
        if bmc is None:
            raise ValidationError({"power": f"{host.fqdn} has no BMC; add one first."}, code="no_bmc")
        if action not in _POWER_LABELS:
            raise ValidationError({"action": f"'{action}' is not a power action ({', '.join(_POWER_LABELS)})."})
        now = timezone.now()
        if bmc.pending and bmc.pending_since and now - bmc.pending_since < _power_stale_after():
            raise ValidationError(
                {"power": f"{host.fqdn}: {bmc.get_pending_display()} is still running; wait for its result."},
                code="power_busy",
            )
        if action == PowerAction.REINSTALL and not host.build:
            host_build_check(host=bmc.host)
        bmc.pending, bmc.pending_since = action, now
        bmc.save(update_fields=["pending", "pending_since"])
        history_record(obj=bmc.host, action=f"{_POWER_LABELS[action].lower()} requested")
        from provisioning.tasks import power_apply as queue  # the tasks call the services: imported when used

        queue.delay_on_commit(bmc.pk, action, actor_current())
    return bmc


def _bmc_access(bmc: Bmc) -> BmcAccess:
    return BmcAccess(address=bmc.address, port=bmc.port, username=bmc.username, password=bmc.password)


def _bmc_retrying(call: Callable[[], T]) -> T:
    """`call`, tried again (after 1 s, 2 s, ...) while the BMC does not answer, DOCK2BOX_POWER_RETRIES times."""
    for attempt in range(settings.DOCK2BOX_POWER_RETRIES + 1):
        try:
            return call()
        except BmcError as error:
            if not error.unreachable or attempt == settings.DOCK2BOX_POWER_RETRIES:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def power_apply(*, bmc_id: int, action: str) -> str:
    """Carry out a requested power action through the host's BMC; record and return its outcome ("done" or the
    error in one line). Reinstall: build mode (with its checks), then a cycle, or on when the host is off; when the
    BMC fails, build mode is left as it was before."""
    bmc = Bmc.objects.select_related("host").get(pk=bmc_id)
    host, access, wait = bmc.host, _bmc_access(bmc), settings.DOCK2BOX_POWER_WAIT
    entered: Build | None = None
    state = bmc.power_state
    try:
        state = _bmc_retrying(lambda: bmc_client.power_get(access))
        if action == PowerAction.REINSTALL and not host.build:
            entered = host_enter_build(host=host)
        if action in (PowerAction.OFF, PowerAction.CYCLE, PowerAction.REINSTALL) and state == PowerState.ON:
            _bmc_retrying(lambda: bmc_client.power_set(access, PowerState.OFF, wait=wait))
            state = PowerState.OFF
        if action in (PowerAction.ON, PowerAction.CYCLE, PowerAction.REINSTALL) and state == PowerState.OFF:
            _bmc_retrying(lambda: bmc_client.power_set(access, PowerState.ON, wait=wait))
            state = PowerState.ON
        outcome = "done"
    except BmcError as error:
        outcome = str(error)
        state = PowerState.UNREACHABLE if error.unreachable else state
    except ValidationError as error:
        outcome = "; ".join(error.messages)
    if entered is not None and outcome != "done":
        host_cancel_build(host=host)  # the install this Reinstall opened never started
    now = timezone.now()
    Bmc.objects.filter(pk=bmc.pk).update(
        pending="", pending_since=None, last_action=action, last_result=outcome[:300], last_result_at=now,
        power_state=state, power_checked=now,
    )  # fmt: skip
    label = _POWER_LABELS.get(action, action).lower()
    history_record(obj=host, action=label if outcome == "done" else f"{label} failed", detail=outcome)
    POWER_ACTIONS.labels(action, "done" if outcome == "done" else "failed").inc()
    return outcome


def power_refresh() -> int:
    """Ask every BMC without a running action for its host's power state, DOCK2BOX_POWER_CONCURRENCY at a time (a
    BMC that does not answer is "unreachable", never "off"). Returns how many were asked."""
    bmcs = list(Bmc.objects.filter(pending=""))

    def ask(bmc: Bmc) -> str:
        try:
            return bmc_client.power_get(_bmc_access(bmc))
        except BmcError as error:
            return PowerState.UNREACHABLE if error.unreachable else PowerState.UNKNOWN

    with ThreadPoolExecutor(max_workers=max(1, settings.DOCK2BOX_POWER_CONCURRENCY)) as pool:
        states = list(pool.map(ask, bmcs))
    now = timezone.now()
    for bmc, state in zip(bmcs, states, strict=True):
        bmc.power_state, bmc.power_checked = state, now
    Bmc.objects.bulk_update(bmcs, ["power_state", "power_checked"], batch_size=500)
    return len(bmcs)

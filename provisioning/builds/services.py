"""Writes of the build lifecycle: build mode entered and cancelled, the token a boot is handed, the installer's use of
it, its events, the installed system's first-boot report. Build mode changes only through here."""

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dock2box.actors import actor_current
from dock2box.changes import record_change
from dock2box.services import history_record
from dock2box.timestamps import timestamp_write
from hosts.choices import HostStatus
from hosts.models import Host
from hosts.services import host_documents
from provisioning.builds.configs import host_image_version, host_install_problem
from provisioning.builds.selectors import InstallerBuild, build_for_token
from provisioning.choices import BuildStage, BuildState
from provisioning.models import Build, BuildEvent

logger = logging.getLogger("dock2box.builds")


MAX_EVENT_MESSAGE = 16384


def build_token_new() -> str:
    """A fresh build token: 256 bits from `secrets`, URL-safe."""
    return secrets.token_urlsafe(32)


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


def build_token_for_boot(
    *,
    host: Host,
    build_id: int | None,
    token: str | None,
    last_activity: datetime | None,
    first_boot: datetime | None,
    now: datetime,
) -> tuple[str, datetime] | None:
    """A token the installer of a host in build mode can use for the whole idle expiry, and until when a boot may be
    handed it without this being asked again; None when the build ended (or the host left build mode) since the boot
    read them: every write here is conditional on what was read, so a cancel or a `done` committed in between stands.

    The open build's token while it is fresh; touched when half its idle time is gone (so a late boot is not
    stranded); a fresh token when it expired; a new build when the host is in build mode without one. The build's
    first PXE boot is recorded (power-on, as near as the portal sees it), in the same statement as any other write.
    """
    idle = _token_idle()
    if build_id is None:
        build = build_open_for_boot(host_id=host.pk)
        if build is None:
            return None
        build_first_boot_record(build_id=build.pk, now=now)
        return str(build.token), now + idle / 2
    first_boot_write = {} if first_boot else {"first_boot": now}  # the build's first PXE boot, unless recorded
    if token and (until := build_token_until(last_activity=last_activity, now=now)):
        if first_boot_write:
            build_first_boot_record(build_id=build_id, now=now)
        return token, until  # no write: the config endpoint refuses it if the build ended meanwhile
    as_read = Build.objects.filter(
        pk=build_id, state__in=[BuildState.PENDING, BuildState.RUNNING], bootloader_started__isnull=True,
        host__build=True, token=token,
    )  # fmt: skip
    if token and last_activity and now - last_activity < idle:
        return (token, now + idle / 2) if as_read.update(last_activity=now, **first_boot_write) else None
    fresh = build_token_new()  # a fresh start: the new token binds to whichever installer uses it first
    renewed = as_read.update(token=fresh, last_activity=now, client_address=None, **first_boot_write)
    return (fresh, now + idle / 2) if renewed else None


@transaction.atomic
def build_open_for_boot(*, host_id: int) -> Build | None:
    """The boot path's way into a build, for a host in build mode without an open one (put there around the
    services): made while the host is in build mode under its row lock, so a cancel committed since the boot read the
    host stands (None)."""
    host = Host.objects.select_for_update().filter(pk=host_id, build=True).first()
    return None if host is None else host_enter_build(host=host)


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


def build_boot_facts_record(*, build: Build, chain: str, secure_boot: bool) -> None:
    """Record how the build's installer was booted (its chain, and Secure Boot as its firmware said), as it says at
    its config fetch; one statement, written only when it changes."""
    if (build.chain, build.secure_boot) != (chain, secure_boot):
        Build.objects.filter(pk=build.pk).update(chain=chain, secure_boot=secure_boot)
        build.chain, build.secure_boot = chain, secure_boot


@transaction.atomic
def build_event_record(*, build: Build, stage: str, progress: int | None, message: str, now: datetime) -> BuildEvent:
    """Record an installer's progress; `done` and `failed` end the build and take the host out of build mode.

    The first `bootloader` event marks the moment the disk may boot on its own: from then on the boot path sends
    the host to its disk, even if `done` never arrives (see `build_close_unconfirmed`).
    """
    if stage == BuildStage.BOOTED:
        raise ValidationError(
            {"stage": "'booted' is the installed system's own report (POST /booted/<credential>), not the installer's."}
        )
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
    if build.bootloader_started is not None:  # its token would start a second install over a disk being finished
        raise ValidationError({"build": f"{host.fqdn}'s install is past its bootloader; it boots its disk."})
    build.image_version_id = version_id
    build.first_boot = build.first_boot or timezone.now()
    build.save(update_fields=["image_version", "first_boot"])
    record_change(host_documents(host.pk))  # the host's boot script installs that version now
    return build


@transaction.atomic
def build_delete(*, build: Build) -> None:
    """Delete a build and its events; an open one is cancelled first, so its host leaves build mode with it."""
    if build.is_open:
        host_cancel_build(host=build.host)
    Build.objects.filter(pk=build.pk).delete()

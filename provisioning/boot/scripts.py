"""Per-host boot scripts: what `/ipxe` and `/pxe/<mac>` answer a MAC, the short way, the long way or ahead.

The short way answers from the shared cache (`provisioning.boot.cache`): no SQL, but what the long way would still
write (last seen once per interval, a build's first boot), and for a script that installs one look-up: its build still
installs (open, its token the script's, not past its bootloader), so that no install script outlives its build even
where the cache missed the change that ended it. The long way reads the MAC's interface, host and open
build in one statement, makes what a boot makes (a build for a host in build mode without one, a fresh token, an
unconfirmed build closed) and renders. Ahead, a worker renders every known host's scripts before it boots
(`scripts_render_ahead`), for the cases where booting writes nothing else; the rest are rendered on their boot.
"""

import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from django.conf import settings as django_settings
from django.core.signing import BadSignature, TimestampSigner

from dock2box.changes import generation_forget
from provisioning.boot import cache as bootcache
from provisioning.boot.menu import BootRequest, Install, menu_decide
from provisioning.boot.render import RENDERERS
from provisioning.builds.selectors import (
    BootLookup,
    build_installs,
    interface_for_boot,
    interface_ids_after,
    interfaces_for_boot,
)
from provisioning.builds.services import (
    build_close_unconfirmed,
    build_first_boot_record,
    build_token_for_boot,
    build_token_until,
)
from provisioning.catalogue.resolve import HostSettings, boot_file_urls, host_settings, install_problem
from provisioning.catalogue.selectors import Catalogue, catalogue_get
from provisioning.discovery.services import boot_seen, discovered_host_record
from provisioning.metrics import BOOT_REQUESTS

logger = logging.getLogger("dock2box.boot")
PICK_SALT = "dock2box.menu-install"
PICK_MAX_AGE = 900  # seconds a menu's signed version entries stay usable
# What boots: iPXE's ${platform} on BIOS and UEFI machines, and GRUB (the Secure Boot chain, UEFI only).
AHEAD = (("pcbios", "ipxe"), ("efi", "ipxe"), ("efi", "grub"))
AHEAD_BATCH = 500  # interfaces per statement and per cache round trip when rendering ahead
UNCONFIRMED = "the install wrote its bootloader but did not report done: booting the disk"
ENDED = "its build ended while it booted: booting the disk"


def host_script(*, portal: str, boot: BootRequest, now: datetime, details: Mapping[str, str]) -> str:
    """The script answering a boot of `boot.mac`; `details` is what an unknown MAC said of itself (kept)."""
    key = bootcache.boot_entry_key(portal=portal, mac=boot.mac, platform=boot.platform, loader=boot.loader)
    stamp, entry = bootcache.boot_entry_get(key, boot)
    if entry is not None and _still_true(entry):  # nothing changed since this host's script was rendered
        return _cached_answer(key, entry, boot, now)
    catalogue = catalogue_get()
    lookup = interface_for_boot(mac=boot.mac)
    if lookup is None:
        discovered_host_record(
            mac=boot.mac, now=now, details={**details, "ip": boot.ip or None, "platform": boot.platform}
        )
        boot_log(boot, "-", "unknown", "")
        return RENDERERS[boot.loader].menu(menu_decide(request=boot, catalogue=catalogue, settings=None, install=None))

    interface = lookup.interface
    host = interface.host
    seen = boot_seen(host_id=host.pk, last_seen=host.last_seen, now=now)
    settings = host_settings(host=host, interface=interface, catalogue=catalogue, version_id=lookup.build_version_id)
    token, notice, until = None, "", None
    if host.build and lookup.build_id is not None and lookup.build_bootloader_started is not None:
        # Its installer began writing the bootloader and never said `done` (the portal was away): never wipe the
        # freshly installed disk again.
        build_close_unconfirmed(build_id=lookup.build_id, now=now)
        notice = UNCONFIRMED
    elif host.build and (problem := install_problem(settings)):
        notice = f"in build mode, but {problem}: booting the disk"
    elif host.build:
        granted = build_token_for_boot(
            host=host, build_id=lookup.build_id, token=lookup.build_token, last_activity=lookup.build_activity,
            first_boot=lookup.build_first_boot, now=now,
        )  # fmt: skip
        token, until = granted or (None, None)
        notice = "" if granted else ENDED
    script = _render(
        portal=portal, boot=boot, catalogue=catalogue, settings=settings, token=token, notice=notice,
        build_id=lookup.build_id,
    )  # fmt: skip
    outcome = "build" if token else "known"
    boot_log(boot, host.fqdn, outcome, notice)
    if stamp is not None and stamp[0] == catalogue.generation:  # read before all the data it shows
        expires = bootcache.boot_entry_expires(now)
        entry = bootcache.BootEntry(
            stamp, script, outcome, host.pk, host.fqdn, notice, seen, until, expires,
            ip=None if interface.ip else boot.ip, build_id=lookup.build_id if token else None, token=token,
        )  # fmt: skip
        bootcache.boot_entries_put({key: entry}, expires=expires)
    return script


def cached_script(*, portal: str, boot: BootRequest, now: datetime) -> str | None:
    """The short way alone (the boot front's): the script from a good entry, writing what the long way would; None
    where the long way must answer."""
    key = bootcache.boot_entry_key(portal=portal, mac=boot.mac, platform=boot.platform, loader=boot.loader)
    _, entry = bootcache.boot_entry_get(key, boot)
    return None if entry is None or not _still_true(entry) else _cached_answer(key, entry, boot, now)


def _still_true(entry: bootcache.BootEntry) -> bool:
    """An entry whose script installs is used only while its build still installs (the database says so)."""
    return entry.build_id is None or build_installs(build_id=entry.build_id, token=entry.token or "")


def _cached_answer(key: str, entry: bootcache.BootEntry, boot: BootRequest, now: datetime) -> str:
    """Answer from an entry, writing what the long way would have: last seen when due, a first boot ahead's."""
    seen = boot_seen(host_id=entry.host_id, last_seen=entry.last_seen, now=now)
    if entry.first_boot_build_id is not None:
        build_first_boot_record(build_id=entry.first_boot_build_id, now=now)
    if seen != entry.last_seen or entry.first_boot_build_id is not None:
        again = dataclasses.replace(entry, last_seen=seen, first_boot_build_id=None)
        bootcache.boot_entries_put({key: again}, expires=entry.expires)  # its time bound does not move
    boot_log(boot, entry.fqdn, entry.outcome, entry.notice)
    return entry.script


def scripts_render_ahead(*, portal: str, now: datetime) -> int:
    """Render and store the scripts of every known MAC for each of `AHEAD` (platform and boot loader), as its next boot
    would get them, where that boot would write nothing but last seen and a build's first boot (those the short way
    writes). Skipped, and rendered on their boot: a host entering build mode without a build or with a token due to be
    touched, a build past its bootloader, an interface without an address (its script shows the one it boots with).
    Returns how many scripts were stored."""
    stored, after = 0, 0
    while batch := interface_ids_after(after=after, limit=AHEAD_BATCH):
        stamps = bootcache.boot_stamps([mac for _, mac in batch])  # before the data they stamp
        catalogue = catalogue_get()
        if stamps and catalogue.generation != next(iter(stamps.values()))[0]:
            generation_forget()  # this process's view of the generation is up to half a second old
            catalogue = catalogue_get()
        entries = {}
        for lookup in interfaces_for_boot(after=after, last=batch[-1][0]):
            stamp = stamps.get(lookup.interface.mac)
            if stamp is not None and stamp[0] == catalogue.generation:
                entries.update(_entries_ahead(portal, lookup, stamp, catalogue, now))
        bootcache.boot_entries_put(entries, expires=bootcache.boot_entry_expires(now))
        stored, after = stored + len(entries), batch[-1][0]
    return stored


def _entries_ahead(
    portal: str, lookup: BootLookup, stamp: bootcache.Stamp, catalogue: Catalogue, now: datetime
) -> dict[str, bootcache.BootEntry]:
    interface = lookup.interface
    host = interface.host
    if not interface.ip or (host.build and lookup.build_bootloader_started is not None):
        return {}
    settings = host_settings(host=host, interface=interface, catalogue=catalogue, version_id=lookup.build_version_id)
    token, notice, until, first_boot_build_id = None, "", None, None
    if host.build and (problem := install_problem(settings)):
        notice = f"in build mode, but {problem}: booting the disk"
    elif host.build:
        until = build_token_until(last_activity=lookup.build_activity, now=now)
        if lookup.build_id is None or not lookup.build_token or until is None:
            return {}
        token, first_boot_build_id = lookup.build_token, None if lookup.build_first_boot else lookup.build_id
    entries = {}
    for platform, loader in AHEAD:
        boot = BootRequest(mac=interface.mac, ip=interface.ip, platform=platform, loader=loader)
        script = _render(portal=portal, boot=boot, catalogue=catalogue, settings=settings, token=token, notice=notice)
        key = bootcache.boot_entry_key(portal=portal, mac=interface.mac, platform=platform, loader=loader)
        entries[key] = bootcache.BootEntry(
            stamp, script, "build" if token else "known", host.pk, host.fqdn, notice, host.last_seen, until,
            bootcache.boot_entry_expires(now), first_boot_build_id=first_boot_build_id,
            build_id=lookup.build_id if token else None, token=token,
        )  # fmt: skip
    return entries


def _render(
    *,
    portal: str,
    boot: BootRequest,
    catalogue: Catalogue,
    settings: HostSettings,
    token: str | None,
    notice: str,
    build_id: int | None = None,
) -> str:
    menu = menu_decide(
        request=boot,
        catalogue=catalogue,
        settings=settings,
        install=install_entry(portal, settings, token, boot.mac) if token else None,
        pick_url=_pick_url(portal, boot, build_id) if django_settings.DOCK2BOX_MENU_INSTALL else None,
        notice=notice,
    )
    return RENDERERS[boot.loader].menu(menu)


def boot_log(boot: BootRequest, fqdn: str, outcome: str, notice: str) -> None:
    BOOT_REQUESTS.labels(outcome).inc()
    logger.info(
        "boot mac=%s host=%s platform=%s loader=%s outcome=%s%s",
        boot.mac, fqdn, boot.platform or "-", boot.loader, outcome, f" notice={notice!r}" if notice else "",
    )  # fmt: skip


def _pick_text(mac: str, image: str, version: str, client: str, build_id: int | None) -> str:
    return f"{mac}|{image}|{version}|{client}|{build_id or ''}"


def _pick_url(portal: str, boot: BootRequest, build_id: int | None) -> Callable[[str, str], str]:
    """Signed, short-lived URLs for the menu's versions, bound to the machine that asked for the menu (its address as
    the portal sees it) and to its build as it was (none, or which): only that menu, from that machine, before its
    build changed, can pick an install."""

    def url(image: str, version: str) -> str:
        signed = TimestampSigner(salt=PICK_SALT).sign(_pick_text(boot.mac, image, version, boot.client, build_id))
        _, stamp, signature = signed.rsplit(":", 2)
        platform = f"&platform={boot.platform}" if boot.platform else ""
        return (f"{portal}/{boot.loader}/install?mac={boot.mac}&image={image}&version={version}{platform}"
                f"&stamp={stamp}&sig={signature}")  # fmt: skip

    return url


def pick_granted(*, boot: BootRequest, image: str, version: str, build_id: int | None, signed: str) -> bool:
    """Whether `signed` (`<stamp>:<signature>` of a picked version's URL) is one the portal made for this machine and
    this build state less than PICK_MAX_AGE seconds ago."""
    text = f"{_pick_text(boot.mac, image, version, boot.client, build_id)}:{signed}"
    try:
        TimestampSigner(salt=PICK_SALT).unsign(text, max_age=PICK_MAX_AGE)
    except BadSignature:
        return False
    return True


def install_entry(portal: str, settings: HostSettings, token: str, mac: str) -> Install:
    """The install entry of a host in build mode booting from `mac` (install_problem() was asked first)."""
    files = boot_file_urls(settings=settings, portal=portal)
    if files is None:
        raise RuntimeError(f"{settings.host.fqdn}: no boot environment")
    return Install(
        label=settings.image_label, fqdn=settings.host.fqdn, mac=mac, kernel_url=files[0], initrd_url=files[1],
        config_url=f"{portal}/config/{token}", kopts=settings.kopts,
    )  # fmt: skip

"""Writes of boot defaults, PXE menus and builds. Build mode changes only through here."""

import secrets
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from dock2box.services import model_update
from hosts.choices import HostStatus
from hosts.models import Host
from provisioning.choices import BuildState
from provisioning.models import BootDefaults, Build, PxeMenu, PxeMenuItem

MENU_FIELDS = ["name", "title", "timeout", "default_item", "theme"]
MENU_ITEM_FIELDS = ["menu", "key", "label", "commands", "position"]
BOOT_DEFAULTS_FIELDS = [
    "pxe_menu", "menu_timeout", "build_timeout", "submenu_timeout", "menu_name", "submenu_name", "boot_version",
    "domain",
]  # fmt: skip


def build_token_new() -> str:
    """A fresh build token: 256 bits from `secrets`, URL-safe."""
    return secrets.token_urlsafe(32)


@transaction.atomic
def pxe_menu_create(*, data: Mapping[str, Any]) -> PxeMenu:
    """Create a PXE menu."""
    return model_update(PxeMenu(), data=data, fields=MENU_FIELDS)


@transaction.atomic
def pxe_menu_update(*, menu: PxeMenu, data: Mapping[str, Any]) -> PxeMenu:
    """Change the given fields of a PXE menu."""
    return model_update(menu, data=data, fields=MENU_FIELDS)


@transaction.atomic
def pxe_menu_delete(*, menu: PxeMenu) -> None:
    """Delete a PXE menu with its items (refused while a site or host uses it)."""
    menu.delete()


@transaction.atomic
def pxe_menu_item_create(*, data: Mapping[str, Any]) -> PxeMenuItem:
    """Add an item to a PXE menu."""
    return model_update(PxeMenuItem(), data=data, fields=MENU_ITEM_FIELDS)


@transaction.atomic
def pxe_menu_item_update(*, item: PxeMenuItem, data: Mapping[str, Any]) -> PxeMenuItem:
    """Change the given fields of a PXE menu item."""
    return model_update(item, data=data, fields=MENU_ITEM_FIELDS)


@transaction.atomic
def pxe_menu_item_delete(*, item: PxeMenuItem) -> None:
    """Delete a PXE menu item."""
    item.delete()


def boot_defaults_get() -> BootDefaults:
    """The one BootDefaults row, created with its defaults on first use."""
    defaults, _ = BootDefaults.objects.get_or_create(pk=1)
    return defaults


@transaction.atomic
def boot_defaults_update(*, data: Mapping[str, Any]) -> BootDefaults:
    """Change the given global boot defaults."""
    return model_update(boot_defaults_get(), data=data, fields=BOOT_DEFAULTS_FIELDS)


@transaction.atomic
def host_enter_build(*, host: Host) -> Build:
    """Put a host in build mode: it installs at its next PXE boot. Idempotent: an open build is returned as is."""
    host = Host.objects.select_for_update().get(pk=host.pk)
    build = host.builds.filter(state__in=[BuildState.PENDING, BuildState.RUNNING]).first()
    if build is None:
        build = Build.objects.create(host=host, token=build_token_new(), last_activity=timezone.now())
    if not host.build:
        host.build = True
        host.save(update_fields=["build", "updated"])
    return build


@transaction.atomic
def host_cancel_build(*, host: Host) -> Build | None:
    """Take a host out of build mode; its open build is cancelled and its token voided.

    A host whose installer was already running is marked failed: its disk may be half written.
    """
    host = Host.objects.select_for_update().get(pk=host.pk)
    build = host.builds.filter(state__in=[BuildState.PENDING, BuildState.RUNNING]).first()
    fields = ["build", "updated"]
    if build is not None:
        if build.state == BuildState.RUNNING:
            host.status = HostStatus.FAILED
            fields.append("status")
        build.state = BuildState.CANCELLED
        build.token = None
        build.finished = timezone.now()
        build.save(update_fields=["state", "token", "finished"])
    host.build = False
    host.save(update_fields=fields)
    return build

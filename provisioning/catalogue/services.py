"""Writes of what the boot path offers: PXE menus and their items, the global boot defaults, installer config
templates."""

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from dock2box.changes import document, record_change
from dock2box.services import model_delete, model_update
from provisioning.models import BootDefaults, BootTemplate, PxeMenu, PxeMenuItem

MENU_FIELDS = ["name", "title", "timeout", "default_item", "theme"]


MENU_ITEM_FIELDS = ["menu", "key", "label", "commands", "position"]


BOOT_DEFAULTS_FIELDS = [
    "pxe_menu", "menu_timeout", "build_timeout", "submenu_timeout", "menu_name", "submenu_name", "boot_version",
    "domain",
]  # fmt: skip


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


TEMPLATE_FIELDS = ["name", "kind", "content", "host", "image", "site"]


@transaction.atomic
def boot_template_create(*, data: Mapping[str, Any]) -> BootTemplate:
    """Create a kickstart, preseed or cloud-init template."""
    saved = model_update(BootTemplate(), data=data, fields=TEMPLATE_FIELDS, history=True)
    record_change(everything=True)  # templates are in the boot catalogue, in no mirrored document
    return saved


@transaction.atomic
def boot_template_update(*, template: BootTemplate, data: Mapping[str, Any]) -> BootTemplate:
    """Change the given fields of a template."""
    saved = model_update(template, data=data, fields=TEMPLATE_FIELDS, history=True)
    record_change(everything=True)
    return saved


@transaction.atomic
def boot_template_delete(*, template: BootTemplate) -> None:
    """Delete a template."""
    model_delete(template, history=True)
    record_change(everything=True)

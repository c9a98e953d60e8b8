"""Reads of menus, defaults and builds."""

from django.db.models import QuerySet

from provisioning.models import Build, PxeMenu, PxeMenuItem


def pxe_menu_list() -> QuerySet[PxeMenu]:
    """All menus with their items."""
    return PxeMenu.objects.select_related("default_item").prefetch_related("items")


def pxe_menu_item_list() -> QuerySet[PxeMenuItem]:
    """All menu items with their menu."""
    return PxeMenuItem.objects.select_related("menu")


def build_list() -> QuerySet[Build]:
    """All builds, newest first, with host and events."""
    return Build.objects.select_related("host", "image_version__image").prefetch_related("events")

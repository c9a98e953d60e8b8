"""Reads of what the boot path offers (menus, templates, the global defaults) and the boot catalogue: all of it that is
not the host itself, cached between boots.

Menus, images with their versions, sites with their subnets, the installer config templates and the global defaults
change rarely and are the same for every booting host. They are read in a few queries, kept per process and rebuilt
when the data generation (`dock2box.changes`) moves, which every service write does: a change is visible on the next
boot in this process, within `DOCK2BOX_GENERATION_CHECK` seconds in every other.
"""

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db.models import Prefetch, QuerySet

from dock2box.changes import UNKNOWN, generation
from hosts.models import Site, Subnet
from hosts.selectors import subnet_for_address
from images.choices import ImageType
from images.models import NEWEST_FIRST, Image, ImageVersion
from provisioning.models import (
    BootDefaults,
    BootTemplate,
    PxeMenu,
    PxeMenuItem,
)


def pxe_menu_list() -> QuerySet[PxeMenu]:
    """All menus with their items."""
    return PxeMenu.objects.select_related("default_item").prefetch_related("items")


def pxe_menu_item_list() -> QuerySet[PxeMenuItem]:
    """All menu items with their menu."""
    return PxeMenuItem.objects.select_related("menu")


def pxe_menu_items(*, menu: PxeMenu | None) -> QuerySet[PxeMenuItem]:
    """A menu's own items (none for a menu not saved yet): the only candidates for its default item."""
    return PxeMenuItem.objects.filter(menu=menu) if menu is not None and menu.pk else PxeMenuItem.objects.none()


def boot_template_list() -> QuerySet[BootTemplate]:
    """Operator templates with their scope."""
    return BootTemplate.objects.select_related("host", "image", "site")


def boot_defaults_list() -> QuerySet[BootDefaults]:
    """The global boot defaults' one row (made by a migration), as a queryset."""
    return BootDefaults.objects.select_related("boot_version__image", "pxe_menu").filter(pk=1)


def boot_defaults() -> BootDefaults:
    """The global boot defaults: the one row, else the model's defaults, unsaved."""
    return boot_defaults_list().first() or BootDefaults(pk=1)


@dataclass(frozen=True)
class Catalogue:
    generation: str
    defaults: BootDefaults
    menus: Mapping[int, PxeMenu]  # each with `.item_list` in menu order
    # Installable images (docker and file) by name, each with `.version_list` newest first.
    images: Mapping[str, Image]
    images_by_id: Mapping[int, Image]
    versions: dict[int, ImageVersion]
    sites: dict[int, Site]
    subnets: list[Subnet] = field(default_factory=list)
    templates: list[BootTemplate] = field(default_factory=list)  # operator templates, with their scope's objects

    def subnet_for(self, address: str | None) -> Subnet | None:
        """The most specific known subnet holding `address`."""
        return subnet_for_address(address=address, subnets=self.subnets)

    def latest(self, image: Image) -> ImageVersion | None:
        versions = self.images[image.name].version_list if image.name in self.images else []  # type: ignore[attr-defined]
        return versions[0] if versions else None


_memo: dict[str, Catalogue] = {}
_lock = threading.Lock()


def catalogue_get() -> Catalogue:
    """The current catalogue: from this process's memo while the generation holds, else freshly read (every time while
    the shared cache is down and the generation unknown)."""
    current = generation()
    if current == UNKNOWN:
        return catalogue_read(current)
    cached = _memo.get("catalogue")
    if cached is not None and cached.generation == current:
        return cached
    with _lock:
        cached = _memo.get("catalogue")
        if cached is None or cached.generation != current:
            cached = catalogue_read(current)
            _memo["catalogue"] = cached
    return cached


def catalogue_read(current: str = "") -> Catalogue:
    """The catalogue read from the database now, bypassing the memo (what this transaction sees)."""
    defaults = boot_defaults()
    menus = {
        menu.pk: menu
        for menu in PxeMenu.objects.prefetch_related(
            Prefetch("items", queryset=PxeMenuItem.objects.order_by("position", "key"), to_attr="item_list")
        )
    }
    images = {
        image.name: image
        for image in Image.objects.exclude(type=ImageType.BOOT)
        .select_related("boot_version__image")
        .prefetch_related(
            Prefetch("versions", queryset=ImageVersion.objects.order_by(*NEWEST_FIRST), to_attr="version_list")
        )
    }
    versions = {version.pk: version for image in images.values() for version in image.version_list}
    versions.update(
        {
            version.pk: version
            for version in ImageVersion.objects.filter(image__type=ImageType.BOOT).select_related("image")
        }
    )
    sites = {site.pk: site for site in Site.objects.select_related("boot_version__image")}
    subnets = list(Subnet.objects.all())
    for subnet in subnets:
        subnet.site = sites[subnet.site_id]
    return Catalogue(
        generation=current,
        defaults=defaults,
        menus=menus,
        images=images,
        images_by_id={image.pk: image for image in images.values()},
        versions=versions,
        sites=sites,
        subnets=subnets,
        templates=list(boot_template_list()),
    )

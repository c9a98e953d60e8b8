"""Reads of menus, defaults and builds."""

from django.db.models import OuterRef, Q, QuerySet, Subquery

from hosts.models import Host, Interface
from provisioning.choices import BuildState
from provisioning.models import BootTemplate, Build, PxeMenu, PxeMenuItem


def pxe_menu_list() -> QuerySet[PxeMenu]:
    """All menus with their items."""
    return PxeMenu.objects.select_related("default_item").prefetch_related("items")


def pxe_menu_item_list() -> QuerySet[PxeMenuItem]:
    """All menu items with their menu."""
    return PxeMenuItem.objects.select_related("menu")


def build_list() -> QuerySet[Build]:
    """All builds, newest first, with host and events."""
    return Build.objects.select_related("host", "image_version__image").prefetch_related("events")


def interface_for_boot(*, mac: str) -> Interface | None:
    """The interface with this MAC, its host and the host's open build, in one query (or None)."""
    open_builds = Build.objects.filter(host=OuterRef("host_id"), state__in=[BuildState.PENDING, BuildState.RUNNING])
    return (
        Interface.objects.select_related("host", "subnet")
        .annotate(
            open_build_id=Subquery(open_builds.values("pk")[:1]),
            open_build_token=Subquery(open_builds.values("token")[:1]),
            open_build_activity=Subquery(open_builds.values("last_activity")[:1]),
            open_build_version=Subquery(open_builds.values("image_version_id")[:1]),
        )
        .filter(mac=mac)
        .first()
    )


def build_for_token(*, token: str) -> Build | None:
    """The open build holding this token, with its host, or None."""
    if not token:
        return None
    return (
        Build.objects.select_related("host")
        .filter(token=token, state__in=[BuildState.PENDING, BuildState.RUNNING])
        .first()
    )


def host_interfaces(*, host: Host) -> list[Interface]:
    """The host's interfaces, primary first, with their subnets."""
    return list(host.interfaces.select_related("subnet").order_by("-primary", "name"))


def boot_template_for(*, host: Host, kind: str) -> BootTemplate | None:
    """The template of `kind` for the host: its own, else its image's, else its site's, else the default one."""
    image_id = host.image_id or (host.site.image_id if host.site is not None else None)
    scopes = Q(host=host) | Q(host=None, image=None, site=None)
    if image_id:
        scopes |= Q(image_id=image_id)
    if host.site_id:
        scopes |= Q(site_id=host.site_id)
    candidates = list(BootTemplate.objects.filter(scopes, kind=kind))

    def rank(template: BootTemplate) -> int:
        return 0 if template.host_id else 1 if template.image_id else 2 if template.site_id else 3

    return min(candidates, key=rank, default=None)


def build_latest(*, host: Host) -> Build | None:
    """The host's newest build with its events."""
    return host.builds.prefetch_related("events").order_by("-created", "-id").first()

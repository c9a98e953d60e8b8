"""Reads of images and versions, with their related rows already joined."""

from django.conf import settings
from django.db.models import Count, QuerySet

from images.models import Image, ImageVersion
from images.registry import registry_base_url


def image_list() -> QuerySet[Image]:
    """All images with their boot version and versions, in two queries however many there are."""
    return Image.objects.select_related("boot_version__image").prefetch_related("versions")


def image_list_counted() -> QuerySet[Image]:
    """All images with their boot version and how many versions and hosts each has."""
    return Image.objects.select_related("boot_version__image").annotate(
        version_count=Count("versions", distinct=True), host_count=Count("hosts", distinct=True)
    )


def image_version_list() -> QuerySet[ImageVersion]:
    """All image versions with their image."""
    return ImageVersion.objects.select_related("image")


def image_version_named(*, image: Image, name: str) -> ImageVersion | None:
    """The version of `image` called `name`, or None when it has none by that name."""
    return image.versions.filter(version=name).first()


def registry_url(registry: str) -> str:
    """The base URL of a registry named `host[:port]`: HTTPS unless DOCK2BOX_INSECURE_REGISTRIES lists it."""
    return registry_base_url(registry, insecure=settings.DOCK2BOX_INSECURE_REGISTRIES)

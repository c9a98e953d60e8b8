"""Writes of images and their versions. Every change goes through here (admin, /api/v2, /api/v1, importers)."""

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from dock2box.services import model_delete, model_update
from images.models import Image, ImageVersion

IMAGE_FIELDS = [
    "name", "type", "description", "registry", "repository", "file_url", "boot_version", "kopts", "debug", "gpt",
    "kexec", "uefi", "volmgt", "naming_scheme", "main_script", "post_script",
]  # fmt: skip
VERSION_FIELDS = [
    "image", "version", "timestamp", "digest", "size", "main_script", "kernel", "initrd", "kernel_url", "initrd_url",
]  # fmt: skip


@transaction.atomic
def image_create(*, data: Mapping[str, Any]) -> Image:
    """Create an image from field values."""
    return model_update(Image(), data=data, fields=IMAGE_FIELDS)


@transaction.atomic
def image_update(*, image: Image, data: Mapping[str, Any]) -> Image:
    """Change the given fields of an image."""
    return model_update(image, data=data, fields=IMAGE_FIELDS)


@transaction.atomic
def image_delete(*, image: Image) -> None:
    """Delete an image and its versions (refused while a host, site or image uses it)."""
    model_delete(image)


@transaction.atomic
def image_version_create(*, data: Mapping[str, Any]) -> ImageVersion:
    """Add a version to an image."""
    return model_update(ImageVersion(), data=data, fields=VERSION_FIELDS)


@transaction.atomic
def image_version_update(*, version: ImageVersion, data: Mapping[str, Any]) -> ImageVersion:
    """Change the given fields of an image version."""
    return model_update(version, data=data, fields=VERSION_FIELDS)


@transaction.atomic
def image_version_delete(*, version: ImageVersion) -> None:
    """Delete an image version (refused while something boots or installs it)."""
    model_delete(version)

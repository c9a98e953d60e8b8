"""Writes of images and their versions. Every change goes through here (admin, /api/v2, /api/v1, importers)."""

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import PROTECT, Model, ProtectedError, QuerySet
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from dock2box.changes import document, record_change
from dock2box.services import model_delete, model_update
from images.choices import ImageType
from images.models import Image, ImageVersion
from images.registry import RegistryClient
from images.selectors import image_version_named, registry_url

IMAGE_FIELDS = [
    "name", "type", "description", "registry", "repository", "file_url", "boot_version", "kopts", "debug", "gpt",
    "kexec", "uefi", "volmgt", "naming_scheme", "main_script", "post_script",
]  # fmt: skip
VERSION_FIELDS = [
    "image", "version", "timestamp", "digest", "size", "layers", "main_script", "file", "kernel", "initrd",
    "kernel_url", "initrd_url",
]  # fmt: skip


def _image_documents(image_id: int | None, *, dependents: bool) -> set[str]:
    """The mirrored documents showing an image: its own and the defaults (a boot image's name is the defaults'
    bootstrap image); with `dependents` (a rename) also the hosts installed with it and the images booting with it."""
    if image_id is None:
        return set()
    name = Image.objects.filter(pk=image_id).values_list("name", flat=True).first()
    if name is None:
        return set()
    documents = {document("image", name), document("default")}
    if dependents:
        # Through reverse relations: images does not import hosts.
        hosts = Image.objects.filter(pk=image_id, hosts__isnull=False).values_list("hosts__fqdn", flat=True)
        booted = Image.objects.filter(boot_version__image_id=image_id).values_list("name", flat=True)
        documents |= {document("host", fqdn) for fqdn in hosts} | {document("image", other) for other in booted}
    return documents


def _version_documents(version_id: int | None, *, dependents: bool) -> set[str]:
    """The documents showing a version: its image's (and the defaults); renamed, also the hosts pinned to it."""
    if version_id is None:
        return set()
    row = ImageVersion.objects.filter(pk=version_id).values_list("image_id", "version").first()
    if row is None:
        return set()
    documents = _image_documents(row[0], dependents=False)
    if dependents:
        hosts = ImageVersion.objects.filter(pk=version_id, hosts__isnull=False).values_list("hosts__fqdn", flat=True)
        documents |= {document("host", fqdn) for fqdn in hosts}
    return documents


@transaction.atomic
def image_create(*, data: Mapping[str, Any]) -> Image:
    """Create an image from field values."""
    image = model_update(Image(), data=data, fields=IMAGE_FIELDS, history=True)
    record_change(_image_documents(image.pk, dependents=False))
    return image


@transaction.atomic
def image_update(*, image: Image, data: Mapping[str, Any]) -> Image:
    """Change the given fields of an image; its type only while nothing uses it or its versions (ProtectedError: a
    host installing a docker image would be handed a boot image's kernel to lay on its disk)."""
    users = image_type_change_refused_by(image=image, new_type=data.get("type", image.type))
    if users:
        raise ProtectedError(f"{image.name} is in use: its type cannot change.", set(users))
    before = _image_documents(image.pk, dependents=True)
    image = model_update(image, data=data, fields=IMAGE_FIELDS, history=True)
    renamed = document("image", image.name) not in before
    record_change(before | _image_documents(image.pk, dependents=renamed))
    return image


def image_type_change_refused_by(*, image: Image, new_type: str) -> list[Model]:
    """What keeps the image from becoming `new_type` (its stored type, not the one an admin form set on it): the
    rows that use it or its versions; none when the type stays or nothing uses them."""
    stored = Image.objects.filter(pk=image.pk).values_list("type", flat=True).first() if image.pk else None
    return _users_of(image) if stored is not None and new_type != stored else []


def _users_of(image: Image, most: int = 10) -> list[Model]:
    """Rows of any app that use the image or one of its versions: those whose foreign key protects it from deletion
    (hosts, sites, boot defaults, images booting with a version), found through the reverse relations (images imports
    no other app), at most `most` of each kind."""
    users: list[Model] = []
    targets: list[Model] = [image, *image.versions.all()]
    for target in targets:
        for relation in target._meta.related_objects:
            if relation.on_delete is PROTECT:
                users += relation.related_model._default_manager.filter(**{relation.field.name: target})[:most]
    return users


STORED_FILE_FIELDS = ["kernel", "initrd", "file"]


def _stored_files(versions: QuerySet[ImageVersion]) -> set[str]:
    """The names of the files the versions keep in storage."""
    return {name for row in versions.values_list(*STORED_FILE_FIELDS) for name in row if name}


def _delete_files_on_commit(names: set[str]) -> None:
    """Remove stored files once the rows that named them are gone for good (not if the transaction rolls back)."""

    def delete() -> None:
        for name in names:
            default_storage.delete(name)

    if names:
        transaction.on_commit(delete)


@transaction.atomic
def image_delete(*, image: Image) -> None:
    """Delete an image and its versions (refused while a host, site or image uses it), with their stored files."""
    before = _image_documents(image.pk, dependents=True)
    files = _stored_files(image.versions.all())
    model_delete(image, history=True)
    record_change(before)
    _delete_files_on_commit(files)


def _digest(stored: FieldFile) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with stored.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return f"sha256:{digest.hexdigest()}", size


def _record_file(version: ImageVersion) -> None:
    """Stored files give their digests and sizes: a file image's tarball its version's digest and size, a boot
    image's kernel and initrd their entries in `layers` (and the size their sum)."""
    if version.file:
        digest, size = _digest(version.file)
        if (version.digest, version.size) != (digest, size):
            version.digest, version.size = digest, size
            version.save(update_fields=["digest", "size"])
    elif version.kernel or version.initrd:
        files: list[dict[str, Any]] = []
        for name, stored in (("kernel", version.kernel), ("initrd", version.initrd)):
            if stored:
                digest, size = _digest(stored)
                files.append({"name": name, "digest": digest, "size": size})
        total = sum(int(entry["size"]) for entry in files)
        if (version.layers, version.size) != (files, total):
            version.layers, version.size = files, total
            version.save(update_fields=["layers", "size"])


@transaction.atomic
def image_version_create(*, data: Mapping[str, Any]) -> ImageVersion:
    """Add a version to an image (a file image's tarball gives it its digest and size)."""
    version = model_update(ImageVersion(), data=data, fields=VERSION_FIELDS, history=True)
    _record_file(version)
    record_change(_version_documents(version.pk, dependents=False))
    return version


@transaction.atomic
def image_version_update(*, version: ImageVersion, data: Mapping[str, Any]) -> ImageVersion:
    """Change the given fields of an image version."""
    before = _version_documents(version.pk, dependents=True)
    stored = _stored_files(ImageVersion.objects.filter(pk=version.pk))
    version = model_update(version, data=data, fields=VERSION_FIELDS, history=True)
    _record_file(version)
    record_change(before | _version_documents(version.pk, dependents=True))
    _delete_files_on_commit(stored - _stored_files(ImageVersion.objects.filter(pk=version.pk)))  # replaced ones
    return version


@transaction.atomic
def image_version_delete(*, version: ImageVersion) -> None:
    """Delete an image version (refused while something boots or installs it) and its stored files."""
    before = _version_documents(version.pk, dependents=True)
    files = _stored_files(ImageVersion.objects.filter(pk=version.pk))
    model_delete(version, history=True)
    record_change(before)
    _delete_files_on_commit(files)


@transaction.atomic
def boot_environment_register(*, image_name: str, version: str, kernel: Path, initrd: Path) -> ImageVersion:
    """A built boot environment as a version of the boot image `image_name` (created when missing).

    The same version again changes nothing: its name carries the hash of what it holds.
    """
    image = Image.objects.filter(name=image_name).first() or image_create(
        data={"name": image_name, "type": ImageType.BOOT, "description": "Dock2Box installer boot environment"}
    )
    existing = image_version_named(image=image, name=version)
    if existing is not None:
        return existing
    with kernel.open("rb") as kernel_file, initrd.open("rb") as initrd_file:
        return image_version_create(
            data={
                "image": image,
                "version": version,
                "timestamp": timezone.now(),
                "kernel": File(kernel_file, name=kernel.name),
                "initrd": File(initrd_file, name=initrd.name),
            }
        )


def image_version_resolve(
    *, version: ImageVersion, registry: str, username: str = "", password: str = ""
) -> ImageVersion:
    """Ask the registry what a docker image version's tag points at; record its digest, size and layers."""
    if version.image.type != ImageType.DOCKER:
        raise ValidationError({"image": "Only Docker images are resolved in a registry."})
    if not registry:
        raise ValidationError({"registry": "No registry: set the image's registry (or its site's)."})
    repository = version.image.repository or version.image.name
    client = RegistryClient(registry_url(registry), username=username, password=password)
    resolved = client.resolve(repository, version.version)
    return image_version_update(
        version=version, data={"digest": resolved.digest, "size": resolved.size, "layers": resolved.layers}
    )

"""`manage.py image_import REFERENCE --name NAME --image-version VERSION`: a Docker engine's image as a file image.

Talks to the engine the docker SDK finds (`DOCKER_HOST`, else the local socket), saves the image, flattens its
layers with `images.layers` (the same whiteout handling the installer uses) into one root filesystem, and stores it
as a gzipped tarball version of a `file` image, its sha256 and size recorded.
"""

import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from images import services
from images.choices import ImageType
from images.layers import LayerError, apply_layers
from images.models import Image, ImageVersion
from images.selectors import image_version_named


def save_layers(save: tarfile.TarFile) -> list[Any]:
    """The layer streams of a `docker save` archive, base first, as its manifest.json lists them."""
    manifest = json.load(save.extractfile("manifest.json"))  # type: ignore[arg-type]
    return [save.extractfile(path) for path in manifest[0]["Layers"]]


class Command(BaseCommand):
    help = "Import an image from a Docker engine as a file image (flattened tarball)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("reference", help="the engine's image, e.g. debian:12")
        parser.add_argument("--name", required=True, help="the file image's name in Dock2Box")
        parser.add_argument("--image-version", required=True, help="the version to create or replace")

    def handle(self, *args: Any, reference: str, name: str, image_version: str, **options: Any) -> None:
        version = image_version
        import docker

        try:
            engine = docker.from_env(timeout=120)
            image = engine.images.get(reference)
        except docker.errors.DockerException as error:
            raise CommandError(f"No Docker engine or no image {reference}: {error}") from error
        with tempfile.TemporaryDirectory(prefix="dock2box-import-") as work:
            saved, root, tarball = Path(work, "save.tar"), Path(work, "rootfs"), Path(work, "image.tar.gz")
            with saved.open("wb") as out:
                for chunk in image.save():
                    out.write(chunk)
            try:
                with tarfile.open(saved) as save:
                    apply_layers(root, save_layers(save))
            except (LayerError, tarfile.TarError, KeyError, ValueError) as error:
                raise CommandError(f"{reference}: cannot flatten its layers: {error}") from error
            with tarfile.open(tarball, "w:gz") as out:
                for path in sorted(root.iterdir()):
                    out.add(path, arcname=path.name)
            self.stdout.write(f"Flattened {reference} into {tarball.stat().st_size} bytes")
            stored = self._store(name, version, tarball)
        self.stdout.write(self.style.SUCCESS(f"{stored} ({stored.digest}, {stored.size} bytes)"))

    def _store(self, name: str, version: str, tarball: Path) -> ImageVersion:
        from django.utils import timezone

        target = Image.objects.filter(name=name).first() or services.image_create(
            data={"name": name, "type": ImageType.FILE}
        )
        if target.type != ImageType.FILE:
            raise CommandError(f"{name} is a {target.type} image; import into a file image")
        with tarball.open("rb") as handle:
            data = {"file": File(handle, name=f"{name}-{version}.tar.gz"), "timestamp": timezone.now()}
            existing = image_version_named(image=target, name=version)
            if existing:
                return services.image_version_update(version=existing, data=data)
            return services.image_version_create(data={**data, "image": target, "version": version})

"""Reads of the files stored with image versions."""

from django.db.models.fields.files import FieldFile

from images.choices import ImageType
from images.models import ImageVersion

STORED_FILES = {
    ("boot", "kernel"): ImageType.BOOT,
    ("boot", "initrd"): ImageType.BOOT,
    ("images", "file"): ImageType.FILE,
}


def stored_file_for(*, area: str, image: str, version: str, kind: str) -> FieldFile | None:
    """A stored file of an image version: a boot image's kernel or initrd, a file image's tarball; or None."""
    image_type = STORED_FILES.get((area, kind))
    if image_type is None:
        return None
    found = ImageVersion.objects.filter(image__name=image, image__type=image_type, version=version).first()
    stored = getattr(found, kind, None) if found else None
    return stored if stored else None

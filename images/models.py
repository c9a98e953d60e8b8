"""What gets installed on a host, and what boots the installer."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from dock2box.validators import validate_name, validate_registry, validate_safe_text, validate_url
from images.choices import ImageType, VolumeManagement

LATEST = "latest"
validate_digest = RegexValidator(r"^sha256:[0-9a-f]{64}\Z", "Write a digest as sha256:<64 lower-case hex digits>.")


def boot_version_field(*, on_delete: Any = models.PROTECT, help_text: str = "") -> Any:
    """A pointer to the boot environment (a version of a boot image) that boots the installer; empty = inherit."""
    return models.ForeignKey(
        "images.ImageVersion",
        verbose_name="boot image version",
        on_delete=on_delete,
        null=True,
        blank=True,
        related_name="+",
        limit_choices_to={"image__type": ImageType.BOOT},
        help_text=help_text,
    )


def boot_version_errors(version: "ImageVersion | None") -> dict[str, str]:
    """The error of a boot image version field that points at a version of an image that is not a boot image."""
    if version is not None and version.image.type != ImageType.BOOT:
        return {"boot_version": "Pick a version of a boot image."}
    return {}


def version_of_image_error(image: "Image | None", version: "ImageVersion | None") -> str | None:
    """Why `version` cannot be the chosen version of `image` (None when it can): the one rule that a version belongs
    to its image, for the host's form and API, the importers and the boot path."""
    if version is None:
        return None
    if image is None:
        return "Pick the image first; a version belongs to an image."
    if version.image_id != image.pk:
        return f"{version} is not a version of {image}."
    return None


class Image(models.Model):
    """An installable image (Docker/OCI or file tarball) or a boot environment (kernel + initrd).

    Its defaults (gpt, kexec, volmgt, kernel options, boot image) apply to every host installed with it, unless the
    host sets its own.
    """

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    type = models.CharField(max_length=10, choices=ImageType.choices)
    description = models.CharField(max_length=200, blank=True, validators=[validate_safe_text])
    registry = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_registry],
        help_text="Docker images: the registry (host[:port]); empty means the site's registry.",
    )
    repository = models.CharField(
        max_length=200,
        blank=True,
        validators=[
            RegexValidator(r"^[a-z0-9]+([._/-][a-z0-9]+)*\Z", "Use a Docker repository name (e.g. library/debian).")
        ],
        help_text="Docker images: the repository in the registry; empty means the image's name.",
    )
    file_url = models.CharField(
        "file URL",
        max_length=300,
        blank=True,
        validators=[validate_url],
        help_text="File and boot images: base URL of the files; empty means the site's file server.",
    )
    boot_version = boot_version_field(
        help_text="The boot environment that installs this image; empty means the site's or the global default."
    )
    kopts = models.CharField(
        "kernel options",
        max_length=500,
        blank=True,
        validators=[validate_safe_text],
        help_text="Added to the boot environment's kernel command line.",
    )
    debug = models.BooleanField(default=False, help_text="Hosts installed with this image do not reboot afterwards.")
    gpt = models.BooleanField("GPT", null=True, blank=True)
    kexec = models.BooleanField(null=True, blank=True)
    uefi = models.BooleanField("UEFI", null=True, blank=True)
    volmgt = models.CharField("volume management", max_length=10, choices=VolumeManagement.choices, blank=True)
    naming_scheme = models.CharField(max_length=50, blank=True, validators=[validate_safe_text])
    main_script = models.TextField(blank=True, help_text="Shell script run in the installed system after the image.")
    post_script = models.TextField(blank=True, help_text="Shell script run last, before the reboot.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.boot_version_id and self.type == ImageType.BOOT:
            raise ValidationError({"boot_version": "A boot image does not boot through another boot image."})
        if boot_version_errors(self.boot_version):
            raise ValidationError(boot_version_errors(self.boot_version))
        if self.type != ImageType.DOCKER and (self.registry or self.repository):
            raise ValidationError({"registry": "Only Docker images come from a registry."})


# "The latest version" of an image, everywhere: the newest timestamp, then the newest row.
NEWEST_FIRST = ["-timestamp", "-id"]


class ImageVersion(models.Model):
    """One version (tag) of an image. A boot image's version has a kernel and an initrd."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=100, validators=[validate_name])
    timestamp = models.DateTimeField(
        default=timezone.now, help_text="When this version was built (empty: now); the newest is 'latest'."
    )
    digest = models.CharField(max_length=71, blank=True, validators=[validate_digest])
    size = models.BigIntegerField(null=True, blank=True, help_text="Bytes.")
    layers = models.JSONField(
        default=list,
        blank=True,
        help_text="Docker images: the layers (digest, size), base first, as the registry lists them. "
        "Boot images: the stored kernel and initrd (name, digest, size).",
    )
    main_script = models.TextField(blank=True)
    file = models.FileField(
        upload_to="images/", blank=True, help_text="File images: the tarball (uploaded or made by image_import)."
    )
    kernel = models.FileField(upload_to="boot/", blank=True)
    initrd = models.FileField(upload_to="boot/", blank=True)
    kernel_url = models.CharField("kernel URL", max_length=300, blank=True, validators=[validate_url])
    initrd_url = models.CharField("initrd URL", max_length=300, blank=True, validators=[validate_url])
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image__name", *NEWEST_FIRST]
        get_latest_by = ["timestamp", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "version"],
                name="imageversion_unique",
                violation_error_message="This image has this version already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.image.name}:{self.version}" if self.image_id else self.version

    def clean(self) -> None:
        if self.version and self.version.lower() == LATEST:
            raise ValidationError({"version": "'latest' is reserved: it means the newest version of the image."})
        if not self.image_id:
            return
        if self.image.type != ImageType.BOOT and (self.kernel or self.initrd or self.kernel_url or self.initrd_url):
            raise ValidationError({"kernel": "Only boot image versions carry a kernel and an initrd."})
        if self.file and self.image.type != ImageType.FILE:
            raise ValidationError({"file": "Only file images carry a tarball."})
        if (self.kernel and self.kernel_url) or (self.initrd and self.initrd_url):
            raise ValidationError({"kernel_url": "Give a file or a URL, not both."})

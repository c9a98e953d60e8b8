from django.db import models


class ImageType(models.TextChoices):
    DOCKER = "docker", "Docker (OCI) image"
    FILE = "file", "File image (tarball)"
    BOOT = "boot", "Boot environment (kernel + initrd)"


class VolumeManagement(models.TextChoices):
    LVM = "lvm", "LVM"
    BTRFS = "btrfs", "btrfs"

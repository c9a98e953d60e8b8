from django.db import models


class BuildState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    # Closed without the installer's `done`: it had begun writing the bootloader, so the disk is never wiped again.
    UNCONFIRMED = "unconfirmed", "Installed, unconfirmed"


class BuildStage(models.TextChoices):
    CONFIG = "config", "Config"
    DISK = "disk", "Disk"
    IMAGE = "image", "Image"
    CONFIGURE = "configure", "Configure"
    BOOTLOADER = "bootloader", "Bootloader"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    BOOTED = "booted", "Booted"  # the installed system's first-boot report, after `done`


class BootChain(models.TextChoices):
    """How a build's installer was booted, as it said."""

    IPXE = "ipxe", "iPXE"
    SHIM_GRUB = "shim-grub", "shim → signed GRUB (Secure Boot)"


class MenuTheme(models.TextChoices):
    DOCK2BOX = "dock2box", "Dock2Box"
    DOCKER = "docker", "Docker"
    GREY = "grey", "Grey"
    NIGHT = "night", "Night"


class TemplateKind(models.TextChoices):
    KICKSTART = "kickstart", "Kickstart"
    PRESEED = "preseed", "Preseed"
    CLOUD_INIT = "cloud-init", "cloud-init"

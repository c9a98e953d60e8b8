"""Build the installer's boot environment (kernel + initramfs) and register it as a version of a boot image."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from images import services as image_services
from installer.build import KERNELS, build
from provisioning.catalogue.services import boot_defaults_update


class Command(BaseCommand):
    help = "Build the boot environment (Debian kernel, busybox, tools, installer) and register it as a boot image."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--flavour", choices=sorted(KERNELS), default=settings.DOCK2BOX_BOOTENV_KERNEL,
                            help="cloud: small, for VMs; generic: real hardware (NIC and storage modules)")  # fmt: skip
        parser.add_argument("--image", default="d2b-bootenv", help="the boot image to add the version to")
        parser.add_argument("--default", action="store_true", help="make it the global boot environment")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(settings.VAR_DIR) / "bootenv"
        built = build(out=out, flavour=options["flavour"], cache=Path(settings.VAR_DIR) / "cache/debian")
        version = image_services.boot_environment_register(
            image_name=options["image"], version=built.version, kernel=built.kernel, initrd=built.initrd
        )
        if options["default"]:
            boot_defaults_update(data={"boot_version": version})
        self.stdout.write(f"Boot environment {options['image']} {version.version}: {version.size} bytes"
                          f"{' (the default)' if options['default'] else ''}; its kernel is signed by {built.signer}"
                          " (Secure Boot hosts boot it through shim)")  # fmt: skip

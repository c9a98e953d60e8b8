"""The boot environment build: reproducible, holding what the installer needs, registered by `manage.py bootenv`."""

import gzip
import hashlib
import subprocess

import pytest
from django.core.management import call_command

from images.models import ImageVersion
from provisioning.catalogue.services import boot_defaults_get

pytestmark = pytest.mark.slow


def test_the_same_inputs_build_the_same_boot_environment(bootenv, debian_cache, tmp_path, settings, db):
    settings.VAR_DIR = tmp_path
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache/debian").symlink_to(debian_cache)
    call_command("bootenv", "--default")
    version = ImageVersion.objects.get(image__name="d2b-bootenv")
    assert version.version == bootenv.version  # the name carries the hash of the content
    assert bootenv.signer.startswith("Debian Secure Boot CA, Debian Secure Boot Signer")  # shim boots it
    assert boot_defaults_get().boot_version == version
    initrd = {entry["name"]: entry for entry in version.layers}["initrd"]
    assert initrd["digest"] == "sha256:" + hashlib.sha256(bootenv.initrd.read_bytes()).hexdigest()
    assert version.initrd.read() == bootenv.initrd.read_bytes()  # byte for byte, times and order fixed

    names = subprocess.run(["cpio", "-t", "--quiet"], input=gzip.decompress(bootenv.initrd.read_bytes()),
                           capture_output=True, check=True).stdout.decode().split()  # fmt: skip
    for needed in [
        "init",
        "usr/bin/python3.11",
        "opt/dock2box/d2b_installer/run.py",
        "opt/dock2box/images/layers.py",
        "usr/lib/syslinux/mbr/mbr.bin",
        "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
        "usr/lib/shim/shimx64.efi.signed",  # Secure Boot hosts whose image has no signed loader of its own
        "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        "opt/dock2box/images/efi.py",
        "etc/lvm/lvm.conf",
    ]:
        assert needed in names, needed  # fmt: skip
    for tool in ["sfdisk", "mke2fs", "mkfs.vfat", "lvm", "extlinux", "busybox"]:
        assert any(name.endswith(f"bin/{tool}") for name in names), tool
    for module in ["virtio_net.ko", "virtio_blk.ko", "virtio_pci.ko", "vfat.ko", "dm-mod.ko"]:
        assert any(name.endswith(f"/{module}") for name in names), module

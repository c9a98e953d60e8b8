"""Test host images: a root filesystem that boots on its own, for installs in QEMU.

It carries the Debian cloud kernel in /boot with a small initramfs (busybox) that loads virtio-blk, finds the root
filesystem by the `root=UUID=` the installer wrote, and switches to it; the image's own /sbin/init prints a marker
with the hostname the installer configured and powers the machine off. Padding of random bytes gives it a size.
"""

import io
import os
import shutil
import tarfile
from pathlib import Path

from installer.build import copy_modules, install_busybox, pack, unpack_kernel

MARKER = "DOCK2BOX-INSTALLED"

INITRAMFS_INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
modprobe -a virtio_pci virtio_blk
root=$(sed -n 's/.*root=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
for try in 1 2 3 4 5 6 7 8 9 10; do device=$(findfs "$root") && break; sleep 0.5; done
mkdir -p /newroot
mount -o ro "$device" /newroot || { echo "test initramfs: cannot mount $root"; exec sh; }
umount /proc /sys
exec switch_root /newroot /sbin/init
"""

ROOT_INIT = f"""#!/bin/sh
mount -t proc proc /proc
echo "{MARKER} host=$(cat /etc/hostname) image=$(cat /etc/test-image) fstab=$(grep -c UUID= /etc/fstab)"
poweroff -f
"""


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():  # a busybox applet link: replace the link, not busybox
        path.unlink()
    path.write_text(text)
    path.chmod(0o755)


def host_root(work: Path, cache: Path, *, name: str, pad_mib: int) -> Path:
    """The image's root filesystem as a directory under `work`."""
    kernel_root, root, initramfs = work / "kernel", work / "root", work / "initramfs"
    vmlinuz, release = unpack_kernel("cloud", cache, kernel_root)
    for directory in (initramfs, root):
        for sub in ("proc", "sys", "dev", "usr/bin", "usr/sbin"):
            (directory / sub).mkdir(parents=True)
        for merged in ("bin", "sbin"):
            os.symlink(f"usr/{merged}", directory / merged)
        install_busybox(cache, directory, work / f"busybox-{directory.name}")
    copy_modules(kernel_root, release, ["virtio_pci", "virtio_blk"], [], initramfs)
    _executable(initramfs / "init", INITRAMFS_INIT)
    (root / "boot").mkdir()
    shutil.copyfile(vmlinuz, root / f"boot/vmlinuz-{release}")
    pack(initramfs, root / f"boot/initrd.img-{release}")
    _executable(root / "sbin/init", ROOT_INIT)
    (root / "etc").mkdir()
    (root / "etc/test-image").write_text(name + "\n")
    (root / "etc/hostname").write_text("unconfigured\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "opt").mkdir()
    with (root / "opt/padding").open("wb") as padding:
        for _ in range(pad_mib):
            padding.write(os.urandom(1 << 20))
    return root


def tar_directory(root: Path, *, compression: str = "") -> bytes:
    """A tar of a directory (names relative, owned by root), optionally compressed: `gz` or `xz`."""
    raw = io.BytesIO()
    options = {"compresslevel": 1} if compression == "gz" else {}
    with tarfile.open(fileobj=raw, mode=f"w:{compression}" if compression else "w", **options) as archive:
        for path in sorted(root.rglob("*")):
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isreg():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return raw.getvalue()

"""The target disk: choose it, wipe it, partition it (GPT or MBR, ESP, /boot, root, LVM), make and mount filesystems."""

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from d2b_installer.shell import log, run

MiB = 1 << 20
ESP_MIB = 128
BOOT_MIB = 256
ROOT_MIN_MIB = 256
SYS_BLOCK = Path("/sys/block")
TARGET = Path("/target")


@dataclass
class Filesystem:
    device: str
    mountpoint: str  # in the installed system
    kind: str  # ext4 or vfat
    uuid: str


@dataclass
class Layout:
    disk: str
    gpt: bool
    uefi: bool
    lvm_group: str = ""
    filesystems: list[Filesystem] = field(default_factory=list)

    def filesystem(self, mountpoint: str) -> Filesystem:
        return next(fs for fs in self.filesystems if fs.mountpoint == mountpoint)


def _size_mib(name: str) -> int:
    return int((SYS_BLOCK / name / "size").read_text()) * 512 // MiB


def choose_disk(named: str) -> str:
    """The disk named in the config (`d2b.disk=`), else the first virtio, SCSI/SATA or NVMe disk."""
    if named:
        if not Path(named).exists():
            raise RuntimeError(f"the named disk {named} does not exist")
        return named
    for _ in range(50):  # disk drivers may still be probing
        candidates = sorted(
            path.name
            for path in SYS_BLOCK.iterdir()
            if path.name.startswith(("vd", "sd", "nvme", "xvd"))
            and _size_mib(path.name) > 0
            and (path / "ro").read_text().strip() == "0"
            and (path / "removable").read_text().strip() == "0"
        )
        if candidates:
            return f"/dev/{candidates[0]}"
        time.sleep(0.2)
    raise RuntimeError("no disk found (virtio, SCSI/SATA or NVMe): is its driver in the boot environment?")


def _partition(disk: str, number: int) -> str:
    return f"{disk}p{number}" if disk[-1].isdigit() else f"{disk}{number}"


def _wait_for(device: str) -> None:
    for _ in range(100):
        if Path(device).exists():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{device} did not appear after partitioning")


def _wipe(disk: str) -> None:
    """Old LVM volumes released, and the first and last MiB zeroed (MBR, GPT and its backup, old signatures)."""
    run("lvm", "vgchange", "-an")
    size = _size_mib(Path(disk).name) * MiB
    with open(disk, "r+b") as device:
        for offset in (0, max(size - MiB, 0)):
            device.seek(offset)
            device.write(bytes(MiB))
        device.flush()
        os.fsync(device.fileno())


def prepare(*, disk: str, gpt: bool, uefi: bool, lvm: bool, hostname: str, needed_mib: int) -> Layout:
    """Partition and format `disk`; refuse a disk too small for the layout and the image before touching it."""
    size = _size_mib(Path(disk).name)
    minimum = 2 + (ESP_MIB if uefi else 0) + BOOT_MIB + max(ROOT_MIN_MIB, needed_mib)
    if size < minimum:
        raise RuntimeError(f"{disk} has {size} MiB; this image and layout need at least {minimum} MiB")
    _wipe(disk)
    lines = [f"label: {'gpt' if gpt else 'dos'}", "unit: sectors", ""]
    if uefi:
        lines.append(f"size={ESP_MIB}MiB, type={'U' if gpt else 'ef'}")
    if gpt:
        lines.append(f'size={BOOT_MIB}MiB, type=L, attrs="LegacyBIOSBootable"')
    else:
        lines.append(f"size={BOOT_MIB}MiB, type=L, bootable")
    lines.append(f"type={'V' if lvm else 'L'}")
    run("sfdisk", "--quiet", "--wipe", "always", "--wipe-partitions", "always", disk, input="\n".join(lines) + "\n")
    numbers = iter(range(1, 5))
    layout = Layout(disk=disk, gpt=gpt, uefi=uefi)
    if uefi:
        esp = _partition(disk, next(numbers))
        _wait_for(esp)
        serial = uuid.uuid4().hex[:8].upper()
        run("mkfs.vfat", "-F", "32", "-n", "EFI", "-i", serial, esp)
        layout.filesystems.append(Filesystem(esp, "/boot/efi", "vfat", f"{serial[:4]}-{serial[4:]}"))
    boot = _partition(disk, next(numbers))
    root = _partition(disk, next(numbers))
    for device in (boot, root):
        _wait_for(device)
    if lvm:
        layout.lvm_group = f"vg-{hostname}"
        run("lvm", "pvcreate", "-ff", "-y", root)
        run("lvm", "vgcreate", "-y", layout.lvm_group, root)
        run("lvm", "lvcreate", "-y", "-l", "100%FREE", "-n", "root", layout.lvm_group)
        run("lvm", "vgmknodes", layout.lvm_group)
        root = f"/dev/{layout.lvm_group}/root"
        _wait_for(root)
    for device, mountpoint in ((root, "/"), (boot, "/boot")):
        identifier = str(uuid.uuid4())
        run("mke2fs", "-q", "-F", "-t", "ext4", "-U", identifier, "-L", "root" if mountpoint == "/" else "boot", device)
        layout.filesystems.insert(0 if mountpoint == "/" else 1, Filesystem(device, mountpoint, "ext4", identifier))
    return layout


def mount(layout: Layout) -> Path:
    """Mount the filesystems under /target, parents first."""
    for fs in sorted(layout.filesystems, key=lambda fs: fs.mountpoint.count("/") + len(fs.mountpoint)):
        path = TARGET / fs.mountpoint.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        run("mount", "-t", fs.kind, fs.device, str(path))
    return TARGET


def release(layout: Layout) -> None:
    """Unmount children first and flush everything to the disk."""
    os.sync()
    for fs in sorted(layout.filesystems, key=lambda fs: -len(fs.mountpoint)):
        run("umount", str(TARGET / fs.mountpoint.lstrip("/")))
    if layout.lvm_group:
        run("lvm", "vgchange", "-an", layout.lvm_group)
    os.sync()
    log(f"{layout.disk} written and released")


def fstab(layout: Layout) -> str:
    lines = ["# Written by the Dock2Box installer"]
    for fs in layout.filesystems:
        options, order = {"/": ("errors=remount-ro", 1), "/boot": ("defaults", 2)}.get(fs.mountpoint, ("umask=0077", 1))
        lines.append(f"UUID={fs.uuid} {fs.mountpoint} {fs.kind} {options} 0 {order}")
    return "\n".join(lines) + "\n"

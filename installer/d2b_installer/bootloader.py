"""A bootloader so the disk starts on its own: extlinux with syslinux's MBR code (BIOS), systemd-boot (UEFI), shim
and Debian's signed GRUB (UEFI with Secure Boot: `secureboot`); and
the initramfs, made again by the image's own tool for the root it was given.

The image contract: the kernel is in the image's /boot (`vmlinuz` or `vmlinuz-<version>`), an init in /sbin/init
(or systemd's), and an initramfs beside the kernel (`initrd.img`, `initrd.img-<version>`, `initrd.gz`) or the tool
that makes one (`update-initramfs`, `dracut`).
"""

import re
import shutil
from pathlib import Path

from d2b_installer import rootfs, secureboot
from d2b_installer.disk import Layout
from d2b_installer.shell import log, run

INITS = ("/sbin/init", "/usr/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd")
UPDATE_INITRAMFS = ("/usr/sbin/update-initramfs", "/sbin/update-initramfs")
DRACUT = ("/usr/bin/dracut", "/usr/sbin/dracut", "/sbin/dracut")

SYSLINUX = Path("/usr/lib/syslinux/mbr")
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")


def _version_key(path: Path) -> list[tuple[int, int | str]]:
    """Names compared as versions: 6.1.0-10 after 6.1.0-9."""
    return [(1, int(part)) if part.isdigit() else (0, part) for part in re.split(r"(\d+)", path.name)]


def _newest(boot: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        found = sorted((path for path in boot.glob(pattern) if path.is_file()), key=_version_key, reverse=True)
        if found:
            return found[0]
    return None


def kernel_files(root: Path) -> tuple[Path, Path | None]:
    """The image's kernel and initramfs, or an error that says what the image lacks."""
    boot = root / "boot"
    kernel = _newest(boot, ("vmlinuz", "vmlinuz-*", "bzImage*"))
    if kernel is None:
        raise RuntimeError("the image has no kernel in /boot (vmlinuz or vmlinuz-<version>): it cannot boot")
    suffix = kernel.name.removeprefix("vmlinuz")
    initrd = _newest(boot, (f"initrd.img{suffix}", "initrd.img", "initrd.img-*", "initrd.gz", "initramfs*"))
    return kernel, initrd


def _release(root: Path, kernel: Path) -> str:
    """The kernel's version: from its name, else the image's only modules directory."""
    if kernel.name.startswith("vmlinuz-"):
        return kernel.name.removeprefix("vmlinuz-")
    modules = rootfs.inside(root, "/lib/modules")
    releases = sorted(path.name for path in modules.iterdir() if path.is_dir()) if modules else []
    if len(releases) != 1:
        raise RuntimeError(f"the kernel /boot/{kernel.name} names no version and /lib/modules holds {releases}")
    return releases[0]


def check_bootable(root: Path, *, secure_boot: bool) -> None:
    """Refuse, before anything is configured, an image that cannot start: no kernel, no init, or no initramfs and
    no tool to make one; with Secure Boot, an unsigned kernel or no signed loader."""
    kernel, initrd = kernel_files(root)
    if secure_boot:
        secureboot.check(root, kernel)
    if rootfs.has(root, *INITS) is None:
        raise RuntimeError("the image has no init (/sbin/init, systemd): it cannot boot")
    if initrd is None and rootfs.has(root, *UPDATE_INITRAMFS, *DRACUT) is None:
        raise RuntimeError(
            f"the image has no initramfs for /boot/{kernel.name} and no tool to make one (update-initramfs, dracut):"
            " its kernel cannot find its root filesystem"
        )


def _generic_initramfs_tools(root: Path) -> bool:
    """initramfs-tools configured for any machine: `MODULES=most`, its default (not `dep`, `list` or `netboot`)."""
    modules = "most"
    directory = root / "etc/initramfs-tools"
    for conf in [directory / "initramfs.conf", *sorted((directory / "conf.d").glob("*"))]:
        if conf.is_file() and not conf.is_symlink():
            for line in conf.read_text(errors="replace").splitlines():
                if match := re.match(r"\s*MODULES=(\S+)", line):
                    modules = match.group(1).strip("'\"")
    return modules == "most"


def initramfs(root: Path, *, rebuild: bool = False) -> None:
    """Make sure the kernel's initramfs finds this root, with the image's own tool (within `rootfs.system`).

    The image's initramfs-tools initramfs for its kernel is kept when it is generic (`MODULES=most`: every disk and
    filesystem driver, the root found by `root=UUID=`): made again it would be the same, at a minute's cost under
    emulation. It is made again when there is none, when initramfs-tools is set to pick modules for the machine it
    runs on (`MODULES=dep`: the image's was made for the build machine), when the tool is dracut (often host-only,
    for the build machine), and when asked (`rebuild`: the `d2b.initramfs=rebuild` kernel option). An image without
    a tool keeps what it carries (`check_bootable` refused it if it carries nothing).
    """
    kernel, initrd = kernel_files(root)
    release = _release(root, kernel)
    own = initrd is not None and initrd.name == f"initrd.img-{release}"
    if tool := rootfs.has(root, *UPDATE_INITRAMFS):
        if own and not rebuild and _generic_initramfs_tools(root):
            log(f"the image's initramfs for {release} is generic (initramfs-tools, MODULES=most): kept")
            return
        rootfs.chroot(root, tool, "-u" if own else "-c", "-k", release)
    elif tool := rootfs.has(root, *DRACUT):
        rootfs.chroot(root, tool, "--force", "--no-hostonly", "--kver", release)
    else:
        log(f"no initramfs tool in the image: its {initrd.name if initrd else 'kernel'} is used as it is")
        return
    log(f"initramfs for {release} made by the image's {Path(tool).name}")


def kind(layout: Layout, *, secure_boot: bool) -> str:
    """The bootloader `install` writes, for an operator."""
    if secure_boot:
        return "UEFI Secure Boot (shim, signed GRUB)"
    return "UEFI (systemd-boot)" if layout.uefi else "BIOS (extlinux)"


def install(root: Path, layout: Layout, options: str, *, secure_boot: bool) -> None:
    kernel, initrd = kernel_files(root)
    root_fs = layout.filesystem("/")
    cmdline = f"root=UUID={root_fs.uuid} ro {options}".strip()
    if secure_boot:
        secureboot.install(root, kernel, initrd, cmdline)
    elif layout.uefi:
        _systemd_boot(root, kernel, initrd, cmdline)
    else:
        _extlinux(root, layout, kernel, initrd, cmdline)


def _extlinux(root: Path, layout: Layout, kernel: Path, initrd: Path | None, cmdline: str) -> None:
    directory = root / "boot/extlinux"
    directory.mkdir(exist_ok=True)
    # Paths are relative to the /boot filesystem, where extlinux lives.
    lines = ["DEFAULT dock2box", "PROMPT 0", "TIMEOUT 0", "LABEL dock2box", f"  KERNEL /{kernel.name}"]
    if initrd:
        lines.append(f"  INITRD /{initrd.name}")
    lines.append(f"  APPEND {cmdline}")
    (directory / "extlinux.conf").write_text("\n".join(lines) + "\n")
    run("extlinux", "--install", str(directory))
    code = (SYSLINUX / ("gptmbr.bin" if layout.gpt else "mbr.bin")).read_bytes()[:440]
    with open(layout.disk, "r+b") as disk:
        disk.write(code)
    log(f"extlinux installed: {kernel.name} {initrd.name if initrd else '(no initramfs)'}")


def _systemd_boot(root: Path, kernel: Path, initrd: Path | None, cmdline: str) -> None:
    esp = root / "boot/efi"
    (esp / "EFI/BOOT").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SYSTEMD_BOOT, esp / "EFI/BOOT/BOOTX64.EFI")  # the removable path: no firmware variables needed
    (esp / "dock2box").mkdir(exist_ok=True)
    shutil.copyfile(kernel, esp / "dock2box/vmlinuz")
    lines = ["title Dock2Box", "linux /dock2box/vmlinuz"]
    if initrd:
        shutil.copyfile(initrd, esp / "dock2box/initrd")
        lines.append("initrd /dock2box/initrd")
    lines.append(f"options {cmdline}")
    (esp / "loader/entries").mkdir(parents=True, exist_ok=True)
    (esp / "loader/entries/dock2box.conf").write_text("\n".join(lines) + "\n")
    (esp / "loader/loader.conf").write_text("default dock2box.conf\ntimeout 0\n")
    log(f"systemd-boot installed on the ESP: {kernel.name} {initrd.name if initrd else '(no initramfs)'}")

"""Secure Boot: the disk of a host that boots with it on starts as the network did, shim → signed GRUB → signed
kernel. shim (signed by Microsoft) and GRUB (signed by Debian) come from the image when it carries them (Debian's
`shim-signed` and `grub-efi-amd64-signed`), else from the boot environment; the kernel is the image's own and must be
signed (Debian's are). A host whose image cannot boot this way is refused with what it lacks.
"""

import shutil
from pathlib import Path

from d2b_installer import rootfs
from d2b_installer.shell import log
from images.efi import signature

SHIM = "/usr/lib/shim/shimx64.efi.signed"
GRUB = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
EFIVAR = Path("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")


def enabled() -> bool:
    """Whether this machine runs with Secure Boot on (its firmware's variable: 4 attribute bytes, then 1)."""
    try:
        return EFIVAR.read_bytes()[4:5] == b"\x01"
    except OSError:
        return False


def loaders(root: Path) -> tuple[Path, Path]:
    """The signed shim and GRUB to boot `root` with: the image's own, else the boot environment's; or an error."""
    found = []
    for path in (SHIM, GRUB):
        own = rootfs.inside(root, path)
        found.append(own if own is not None and own.is_file() else Path(path))
    missing = [str(path) for path in found if not path.is_file()]
    if missing:
        raise RuntimeError(f"no signed loader to boot under Secure Boot: {', '.join(missing)} in neither the image "
                           "nor the boot environment")  # fmt: skip
    return found[0], found[1]


def check(root: Path, kernel: Path) -> None:
    """Refuse an image that cannot boot under Secure Boot: an unsigned kernel, or no signed loader."""
    if signature(kernel) is None:
        raise RuntimeError(
            f"the image's kernel /boot/{kernel.name} is not signed: it cannot boot under Secure Boot (use Debian's "
            "signed kernels, or sign your own and enrol its key with MOK)"
        )
    loaders(root)


def _quote(value: str) -> str:
    """`value` as one GRUB word, nothing in it expanded."""
    return "'" + value.replace("'", "'\\''") + "'"


def install(root: Path, kernel: Path, initrd: Path | None, cmdline: str) -> None:
    """shim as the removable path's loader (no firmware variables needed), GRUB beside it, and GRUB's config there
    (Debian's signed GRUB reads `grub.cfg` beside itself), booting the kernel and initramfs copied to the ESP."""
    shim, grub = loaders(root)
    esp = root / "boot/efi"
    (esp / "EFI/BOOT").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shim, esp / "EFI/BOOT/BOOTX64.EFI")
    shutil.copyfile(grub, esp / "EFI/BOOT/grubx64.efi")
    (esp / "dock2box").mkdir(exist_ok=True)
    shutil.copyfile(kernel, esp / "dock2box/vmlinuz")
    lines = ["set timeout=0", f"linux /dock2box/vmlinuz {' '.join(_quote(word) for word in cmdline.split())}"]
    if initrd:
        shutil.copyfile(initrd, esp / "dock2box/initrd")
        lines.append("initrd /dock2box/initrd")
    lines.append("boot")
    (esp / "EFI/BOOT/grub.cfg").write_text("\n".join(lines) + "\n")
    where = "the image's" if str(shim).startswith(str(root)) else "the boot environment's"
    log(f"shim and signed GRUB ({where}) installed on the ESP: {kernel.name}, signed by {signature(kernel)}")

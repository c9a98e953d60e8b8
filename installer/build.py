"""Build the boot environment: a Debian kernel and an initramfs that runs the Dock2Box installer.

    python -m installer.build --flavour cloud --out var/bootenv

The kernel and busybox-static come from the Debian archive (`apt-get download`, unpacked with `dpkg-deb -x`, never
installed); the tools busybox lacks (sfdisk, mke2fs, mkfs.vfat, lvm, extlinux, GNU tar: see images/layers.py) and
Python are copied from this machine with the libraries `ldd` names; only the standard-library modules the installer
imports are taken. File times are fixed and the archive sorted, so the same inputs give the same initrd.
`manage.py bootenv` builds and registers the result as a version of a boot image.
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from images.efi import signature

REPO = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3.11"
EPOCH = 1_700_000_000  # every file's time in the initrd
KERNELS = {"cloud": "linux-image-cloud-amd64", "generic": "linux-image-amd64"}
# Drivers by name for every flavour; the generic flavour adds whole driver directories for real hardware.
MODULES = [
    "virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "sd_mod", "sr_mod", "nvme", "ahci", "ata_piix",
    "vfat", "nls_cp437", "nls_ascii", "dm_mod", "ext4", "crc32c_generic", "crc32c_intel", "e1000", "e1000e",
    "efivarfs",
]  # fmt: skip
GENERIC_DIRECTORIES = ["drivers/net/ethernet", "drivers/ata", "drivers/scsi", "drivers/nvme", "drivers/md",
                       "drivers/block", "drivers/virtio", "drivers/message/fusion"]  # fmt: skip
TOOLS = ["sfdisk", "mke2fs", "mkfs.vfat", "lvm", "extlinux", "ip", "zstd", "tar", PYTHON]
FILES = [
    "/etc/mke2fs.conf",
    "/usr/lib/syslinux/mbr/mbr.bin",
    "/usr/lib/syslinux/mbr/gptmbr.bin",
    "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    "/usr/lib/shim/shimx64.efi.signed",  # Secure Boot: for images that carry no signed loader of their own
    "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
]
# Imported lazily (or by `python -m`), so a probe of the installer's imports does not see them.
LAZY_MODULES = ["runpy", "gzip", "lzma", "bz2", "zlib", "ssl", "encodings.idna", "encodings.latin_1", "encodings.ascii"]
LVM_CONF = """# No udev in the boot environment: LVM makes its device nodes itself.
activation {
    udev_sync = 0
    udev_rules = 0
}
devices {
    obtain_device_list_from_udev = 0
}
"""


@dataclass(frozen=True)
class BootEnvironment:
    version: str
    kernel: Path
    initrd: Path
    signer: str  # who signed the kernel (Debian's are signed: it boots under Secure Boot, shim checks it)


def _run(*command: str, cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip()[-1000:]}")
    return done.stdout


def download(package: str, cache: Path) -> Path:
    """The .deb of `package` (a metapackage resolves to the versioned package it depends on), cached.

    When the package lists are missing or stale (the mirror moved on), they are updated once and the download retried.
    """
    for attempt in range(3):
        try:
            return _download(package, cache)
        except RuntimeError:
            if attempt == 2:
                raise
            _run("apt-get", "update", "-q")
    raise AssertionError("unreachable")


def _download(package: str, cache: Path) -> Path:
    depends = re.findall(r"Depends: (linux-image-\S+)", _run("apt-cache", "depends", package))
    name = depends[0] if package.startswith("linux-image") and depends else package
    policy = re.search(r"Candidate: (\S+)", _run("apt-cache", "policy", name))
    if policy is None or policy.group(1) == "(none)":
        raise RuntimeError(f"{name} is not in the package lists")
    version = policy.group(1)
    cache.mkdir(parents=True, exist_ok=True)
    deb = cache / f"{name}_{version.replace(':', '%3a')}_amd64.deb"
    if not deb.exists():
        _run("apt-get", "download", f"{name}={version}", cwd=cache)
    return deb


def _copy(path: str, root: Path) -> None:
    """Copy a file (following links) to the same path under root, keeping the path's own symlink if it is one."""
    source = Path(path)
    target = root / path.lstrip("/")
    if target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        link = os.readlink(source)
        os.symlink(link, target)
        _copy(os.path.normpath(source.parent / link), root)
        return
    shutil.copy2(source, target)


def _copy_program(path: str, root: Path) -> None:
    """A program and every shared library it loads."""
    real = shutil.which(path) or path
    _copy(real, root)
    for line in _run("ldd", real).splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            _copy(match.group(1), root)


def unpack_kernel(flavour: str, cache: Path, into: Path) -> tuple[Path, str]:
    """The Debian kernel package of a flavour unpacked into `into`, indexed; returns its vmlinuz and release."""
    if flavour not in KERNELS:
        raise ValueError(f"unknown kernel flavour {flavour!r}: use one of {', '.join(KERNELS)}")
    into.mkdir(parents=True, exist_ok=True)
    _run("dpkg-deb", "-x", str(download(KERNELS[flavour], cache)), str(into))
    vmlinuz = next((into / "boot").glob("vmlinuz-*"))
    release = vmlinuz.name.removeprefix("vmlinuz-")
    _run("depmod", "-b", str(into), release)
    return vmlinuz, release


def copy_modules(kernel_root: Path, release: str, names: list[str], directories: list[str], root: Path) -> None:
    """Copy modules (by name, and all under `directories`) with what they depend on; index them for modprobe."""
    base = kernel_root / "lib/modules" / release
    depends: dict[str, list[str]] = {}
    for line in (base / "modules.dep").read_text().splitlines():
        module, _, rest = line.partition(":")
        depends[module] = rest.split()
    by_name = {Path(module).name.removesuffix(".ko").replace("-", "_"): module for module in depends}
    wanted = [by_name[name] for name in names if name in by_name]
    wanted += [module for module in depends if any(module.startswith(f"kernel/{d}/") for d in directories)]
    chosen: set[str] = set()
    while wanted:
        module = wanted.pop()
        if module not in chosen:
            chosen.add(module)
            wanted += depends[module]
    target = root / "lib/modules" / release
    for module in sorted(chosen):
        (target / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(base / module, target / module)
    for index in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        if (base / index).exists():
            shutil.copy2(base / index, target / index)
    _run("depmod", "-b", str(root), release)


def _python(root: Path) -> None:
    """Python and exactly the standard-library modules the installer imports (compiled ahead)."""
    _copy_program(PYTHON, root)
    os.symlink("python3.11", root / "usr/bin/python3")
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import d2b_installer.run, "
        + ", ".join(LAZY_MODULES)
        + "; print('\\n'.join(sorted({getattr(m, '__file__', None) or '' for m in sys.modules.values()})))"
    )
    stdlib = "/usr/lib/python3.11/"
    for path in _run(PYTHON, "-I", "-c", probe, str(REPO / "installer"), str(REPO)).split():
        if path.startswith(stdlib):
            _copy_program(path, root) if path.endswith(".so") else _copy(path, root)
    for package in ["encodings"]:  # looked up by name at run time (codecs)
        for module in Path(stdlib, package).glob("*.py"):
            _copy(str(module), root)


def _installer(root: Path) -> None:
    target = root / "opt/dock2box"
    shutil.copytree(REPO / "installer/d2b_installer", target / "d2b_installer",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (target / "images").mkdir()
    for name in ("__init__.py", "layers.py", "tarstream.py", "registry.py", "efi.py"):
        shutil.copy2(REPO / "images" / name, target / "images" / name)
    shutil.copy2(REPO / "installer/udhcpc.sh", target / "udhcpc.sh")
    shutil.copy2(REPO / "installer/init", root / "init")


def install_busybox(cache: Path, root: Path, work: Path) -> None:
    """busybox-static, linked under every applet name no real tool already has."""
    (work / "busybox").mkdir(parents=True, exist_ok=True)
    _run("dpkg-deb", "-x", str(download("busybox-static", cache)), str(work / "busybox"))
    for directory in ("usr/bin", "bin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2(work / "busybox/bin/busybox", root / "bin/busybox")
    for applet in _run(str(root / "bin/busybox"), "--list-full").split():
        name = Path(applet).name
        if not any((root / d / name).exists() or (root / d / name).is_symlink()
                   for d in ("bin", "sbin", "usr/bin", "usr/sbin")):  # fmt: skip
            (root / applet).parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", root / applet)


def pack(root: Path, initrd: Path) -> None:
    """`root` as a gzip-compressed newc cpio archive (names sorted, owned by root): an initramfs."""
    names = "\n".join(sorted(str(p.relative_to(root)) for p in root.rglob("*"))) + "\n"
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--reproducible", "--quiet"], cwd=root,
                             input=names.encode(), capture_output=True, check=True).stdout  # fmt: skip
    initrd.write_bytes(subprocess.run(["gzip", "-6", "-n"], input=archive, capture_output=True, check=True).stdout)


def build(*, out: Path, flavour: str = "cloud", cache: Path | None = None) -> BootEnvironment:
    """Build the kernel and initrd into `out`; returns them with a version naming the kernel and the initrd's hash."""
    cache = cache or out / "cache"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="d2b-bootenv-") as temporary:
        work = Path(temporary)
        kernel_root, root = work / "kernel", work / "root"
        vmlinuz, release = unpack_kernel(flavour, cache, kernel_root)
        signer = signature(vmlinuz)
        if signer is None:
            raise RuntimeError(f"{vmlinuz.name} is not signed: Secure Boot hosts could not boot it")
        root.mkdir()
        for merged in ("bin", "sbin", "lib", "lib64"):  # the same /usr merge as the machine the tools come from
            if Path("/", merged).is_symlink():
                (root / "usr" / merged).mkdir(parents=True, exist_ok=True)
                os.symlink(os.readlink(Path("/", merged)), root / merged)
        for directory in ("dev", "proc", "sys", "run", "tmp", "root", "target", "etc/lvm", "usr/lib/ssl"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        directories = GENERIC_DIRECTORIES if flavour == "generic" else []
        copy_modules(kernel_root, release, MODULES, directories, root)
        for tool in TOOLS:
            _copy_program(tool, root)
        for file in FILES:
            _copy(file, root)
        if Path("/etc/ssl/certs/ca-certificates.crt").exists():
            shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "usr/lib/ssl/cert.pem")
        (root / "etc/lvm/lvm.conf").write_text(LVM_CONF)
        _python(root)
        _installer(root)
        install_busybox(cache, root, work)
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        version = f"{release.removesuffix('-amd64')}-{digest.hexdigest()[:8]}"
        (root / "etc/dock2box-bootenv").write_text(version + "\n")
        for path in [root, *root.rglob("*")]:
            os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
        # Compiled ahead (the guest would compile on every boot), naming the files by their paths in the initrd.
        _run(PYTHON, "-I", "-m", "compileall", "-q", "-j", "0", "-s", str(root), "-p", "/",
             "--invalidation-mode", "unchecked-hash", str(root))  # fmt: skip
        for path in [root, *root.rglob("*")]:
            os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
        initrd = out / f"initrd-{version}.gz"
        pack(root, initrd)
        kernel = out / f"vmlinuz-{version}"
        shutil.copyfile(vmlinuz, kernel)
    return BootEnvironment(version=version, kernel=kernel, initrd=initrd, signer=signer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavour", choices=sorted(KERNELS), default="cloud")
    parser.add_argument("--out", type=Path, default=REPO / "var/bootenv")
    built = build(out=parser.parse_args().out, flavour=parser.parse_args().flavour)
    print(f"{built.version}\n{built.kernel} (signed: {built.signer})\n{built.initrd}")


if __name__ == "__main__":
    main()

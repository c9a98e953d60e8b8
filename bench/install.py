"""Install benchmark: QEMU (TCG) from power-on to `done` and to the installed system's marker, and the download
throughput of the installer against busybox `wget` of the same file in the same VM.

    .venv/bin/python bench/install.py [--sizes 64 256] [--compression gz|zst] [--debian] [--cpus 1]
    .venv/bin/python bench/install.py --concurrent 10   (ten image stages at once, no QEMU: bench/install_many.py)

`--secure-boot` adds the first size as a UEFI image installed twice, with Secure Boot off (iPXE, systemd-boot) and on
(OVMF enforcing it with Microsoft's keys: shim → Debian's signed GRUB through `manage.py tftpd`), both timed.
`--debian` adds the real-image case: the Debian 12 nginx image built from deploy/images (tests/debian_images.py:
mmdebstrap, podman, buildah) in a registry on loopback, installed as a docker image; timed from power-on to `done`
and to the application's page answering through a port QEMU forwards, with `wget` of its largest layer beside it.

The portal runs under gunicorn on SQLite (tasks in-process, the boot catalogue cached in Redis) in a temporary directory, with the
boot environment built by installer/build.py. For each size, a file image (a bootable test root filesystem padded
with random bytes, so it does not compress) is installed on an empty 2 GiB virtio disk; the guest then boots again
(PXE → local disk) until its own init prints the marker. The wget comparison boots the same boot environment with an
extra script as its init: it fetches the image with `wget -O /dev/null`, with `wget -O - | sha256sum`, and with the
installer's download path (Python, urllib, sha256 on every byte) without a disk, timed by the guest's clock. Prints a Markdown report.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "installer"))
from tests.services import free_port, wait_until  # noqa: E402 (after the path is set)

WORK = Path(tempfile.mkdtemp(prefix="d2b-bench-install-"))
MAC = "52:54:00:be:00:01"
MENU_TIMEOUT = 3  # seconds the installed host's boot menu waits before its local-boot default (30 by default)

BENCH_INIT = """#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin PYTHONPATH=/opt/dock2box
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for pass in 1 2 3; do cat /sys/bus/*/devices/*/modalias | sort -u | xargs modprobe -aq 2>/dev/null; done
ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
url=$(sed -n 's/.*bench.url=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
t0=$(cut -d' ' -f1 /proc/uptime); wget -q -O /dev/null "$url"; t1=$(cut -d' ' -f1 /proc/uptime)
echo "BENCH wget $t0 $t1"
t0=$(cut -d' ' -f1 /proc/uptime); wget -q -O - "$url" | sha256sum >/dev/null; t1=$(cut -d' ' -f1 /proc/uptime)
echo "BENCH wgetsha $t0 $t1"
python3 -c '
import sys, time, urllib.request
from images.registry import Verified
start = time.monotonic()
stream = Verified(urllib.request.urlopen(sys.argv[1]), "")
while stream.read(1 << 16):
    pass
print("BENCH python", start, time.monotonic())
' "$url"
poweroff -f
"""


PORT = free_port()
PORTAL = f"http://10.0.2.2:{PORT}"
os.environ.update({
    "DATABASE_URL": f"sqlite:///{WORK}/db.sqlite3", "DJANGO_SECRET_KEY": "bench-only", "DOCK2BOX_VAR_DIR": str(WORK),
    "DOCK2BOX_PUBLIC_URL": PORTAL, "DJANGO_ALLOWED_HOSTS": "*", "CELERY_BROKER_URL": "", "DOCK2BOX_LOG_LEVEL": "WARNING",
    "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/14",  # shared by gunicorn's workers and this process's changes
    "DJANGO_SETTINGS_MODULE": "dock2box.settings",
})  # fmt: skip


CPUS = 1  # the guest's vCPUs (--cpus); TCG runs one host thread per vCPU


def qemu(
    *extra: str, disk: Path | None = None, bootfile: str = "", forward: str = "", firmware: str = "", tftp: str = ""
) -> subprocess.Popen:
    """A guest booting from the network; `firmware`: "" (BIOS), "uefi", or "secure" (UEFI enforcing Secure Boot with
    Microsoft's keys, its own PXE: no iPXE option ROM); `tftp`: the directory QEMU's user network serves by TFTP."""
    args = ["qemu-system-x86_64", "-nographic", "-no-reboot", "-accel", "tcg", "-smp", str(CPUS), "-m", "1024", "-boot", "n",
            "-netdev", f"user,id=n0{',bootfile=' + bootfile if bootfile else ''}{',' + forward if forward else ''}"
                       f"{',tftp=' + tftp if tftp else ''}",
            "-device", f"virtio-net-pci,netdev=n0,mac={MAC}{',romfile=' if firmware == 'secure' else ''}",
            *extra]  # fmt: skip
    if firmware:
        from tests.qemu import OVMF_CODE, OVMF_SECURE_CODE, OVMF_SECURE_VARS, OVMF_VARS

        variables = WORK / f"vars-{time.monotonic_ns()}.fd"
        variables.write_bytes((OVMF_SECURE_VARS if firmware == "secure" else OVMF_VARS).read_bytes())
        code = OVMF_SECURE_CODE if firmware == "secure" else OVMF_CODE
        args += ["-machine", "q35,smm=on" if firmware == "secure" else "q35",
                 *(["-global", "driver=cfi.pflash01,property=secure,value=on"] if firmware == "secure" else []),
                 "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
                 "-drive", f"if=pflash,format=raw,file={variables}"]  # fmt: skip
    if disk:
        args += ["-drive", f"file={disk},if=virtio,format=raw"]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def watch(process: subprocess.Popen, marks: list[str], timeout: float = 900) -> tuple[dict[str, float], str]:
    """Seconds from now until each mark first shows on the console; the console when the guest stops."""
    start, seen, console = time.monotonic(), {}, ""
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    while time.monotonic() - start < timeout:
        chunk = process.stdout.read(65536)
        if chunk:
            console += chunk.decode("utf-8", "replace")
            for mark in marks:
                if mark not in seen and mark in console:
                    seen[mark] = time.monotonic() - start
        elif process.poll() is not None:
            break
        else:
            time.sleep(0.05)
    process.kill()
    process.wait()
    return seen, console


def transfer_times(bootenv, url: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Seconds for `wget`, `wget | sha256sum` and the installer's download path to fetch `url` in the boot
    environment (no disk), by the guest's clock."""
    from installer.build import pack

    extra = WORK / "bench-init.cpio.gz"
    (WORK / "bench-root").mkdir(exist_ok=True)
    init = WORK / "bench-root/bench-init"
    init.write_text(BENCH_INIT)
    init.chmod(0o755)
    pack(WORK / "bench-root", extra)
    initrd = WORK / "bench-initrd.gz"
    initrd.write_bytes(bootenv.initrd.read_bytes() + extra.read_bytes())
    _, console = watch(qemu("-kernel", str(bootenv.kernel), "-initrd", str(initrd), "-append",
                            f"console=ttyS0 quiet rdinit=/bench-init bench.url={url}"), [], timeout=600)  # fmt: skip
    return {m.group(1): float(m.group(3)) - float(m.group(2))
            for m in re.finditer(r"BENCH (wget|wgetsha|python) ([\d.]+) ([\d.]+)", console)}  # fmt: skip


def download_seconds(console: str) -> float:
    """From the installer's `image 0` event to its `image 100` one, by the guest's clock."""
    stamps = {m.group(2): float(m.group(1)) for m in re.finditer(r"\[\s*([\d.]+)\] event image (0|100) ", console)}
    return stamps["100"] - stamps["0"]


def secure_boot_case(image, site, subnet) -> dict[str, tuple[float, float]]:  # type: ignore[no-untyped-def]
    """The same UEFI file image installed twice on an empty disk: Secure Boot off (iPXE, systemd-boot) and on (the
    firmware enforcing it: shim → Debian's signed GRUB through `manage.py tftpd`, shim and GRUB on the disk). For each,
    power-on → `done` and power-on → the installed system's marker (the second boot included), in seconds."""
    from django.conf import settings

    from hosts import services as host_services
    from provisioning.boot.binaries import GRUB, SHIM
    from provisioning.builds.services import host_enter_build
    from tests.host_image import MARKER
    from tests.services import manage, stop

    port = free_port(socket.SOCK_DGRAM)
    log = WORK / "tftpd.log"
    tftpd = manage("tftpd", "--bind", "127.0.0.1", "--port", str(port),
                   env={"DOCK2BOX_TFTP_PORTAL_URL": f"http://127.0.0.1:{PORT}", "DOCK2BOX_LOG_LEVEL": "INFO"},
                   stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    directory = WORK / "firmware-tftp"
    (directory / "grub").mkdir(parents=True)
    (directory / SHIM).write_bytes(Path(settings.DOCK2BOX_SHIM_EFI).read_bytes())
    (directory / GRUB).write_bytes(Path(settings.DOCK2BOX_GRUB_EFI).read_bytes())
    (directory / "grub/grub.cfg").write_text(f"set root=tftp,10.0.2.2:{port}\nconfigfile /grub/grub.cfg\n")
    results = {}
    try:
        wait_until(lambda: "serving" in log.read_text(), what="tftpd")
        for secure in (False, True):
            host = host_services.host_create(
                data={"fqdn": "uefi.bench.example.com", "site": site, "image": image, "secure_boot": secure},
                interfaces=[{"name": "eth0", "mac": MAC, "ip": "10.0.2.15", "subnet": subnet}],
            )
            host_enter_build(host=host)
            disk = WORK / f"disk-uefi-{secure}.img"
            with disk.open("wb") as handle:
                handle.truncate(2 << 30)
            boot = {"firmware": "secure", "bootfile": SHIM, "tftp": str(directory)} if secure else {
                "firmware": "uefi", "bootfile": f"{PORTAL}/boot.ipxe"}  # fmt: skip
            started = time.monotonic()
            seen, console = watch(qemu(disk=disk, **boot), ["event done"])
            installed = time.monotonic() - started
            if "event done" not in seen:
                raise SystemExit(f"the UEFI install (Secure Boot {secure}) failed:\n{console[-3000:]}")
            seen2, console2 = watch(qemu(disk=disk, **boot), [MARKER], timeout=300)
            if MARKER not in seen2:
                raise SystemExit(f"the UEFI disk (Secure Boot {secure}) did not boot:\n{console2[-3000:]}")
            host_services.host_delete(host=host)
            results["on" if secure else "off"] = (seen["event done"], installed + seen2[MARKER])
    finally:
        stop(tftpd)
    return results


def debian_case(bootenv, site, subnet, registry) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Power-on → `done` → the nginx page of the Debian 12 image built from its Dockerfile."""
    from django.utils import timezone

    from hosts import services as host_services
    from hosts.services import image_version_resolve_from_registry
    from images import services as image_services
    from provisioning.builds.services import host_enter_build
    from tests.debian_images import Containers, debian_images

    built = debian_images(Containers(WORK / "containers", registry.address), "12", ROOT / "var/cache/debian-roots")
    repository, tag = built.app.split(":")
    site.registry = registry.address
    site.save()
    image = image_services.image_create(
        data={"name": "web", "type": "docker", "repository": repository, "kopts": "console=ttyS0"}
    )
    version = image_services.image_version_create(data={"image": image, "version": tag, "timestamp": timezone.now()})
    version = image_version_resolve_from_registry(version_id=version.pk)
    site.registry = f"10.0.2.2:{registry.port}"
    site.save()
    host = host_services.host_create(
        data={"fqdn": "web.bench.example.com", "site": site, "image": image},
        interfaces=[{"name": "eth0", "mac": MAC, "ip": "10.0.2.15", "subnet": subnet}],
    )
    host_enter_build(host=host)
    disk = WORK / "disk-debian.img"
    with disk.open("wb") as handle:
        handle.truncate(4 << 30)
    started = time.monotonic()
    seen, console = watch(qemu(disk=disk, bootfile=f"{PORTAL}/boot.ipxe"), ["event image 0", "event done"])
    if "event done" not in seen:
        raise SystemExit(f"the Debian install failed:\n{console[-3000:]}")
    installed = time.monotonic() - started
    http = free_port()
    guest = qemu(disk=disk, bootfile=f"{PORTAL}/boot.ipxe", forward=f"hostfwd=tcp:127.0.0.1:{http}-10.0.2.15:80")
    try:
        wait_until(lambda: b"Dock2Box build" in urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=5).read(),
                   timeout=600, what="the installed application")  # fmt: skip
        answering = time.monotonic() - started
    finally:
        guest.kill()
        guest.wait()
    mib = sum(layer["size"] for layer in version.layers) / (1 << 20)
    largest = max(version.layers, key=lambda layer: layer["size"])
    times = transfer_times(bootenv, f"http://10.0.2.2:{registry.port}/v2/{repository}/blobs/{largest['digest']}")
    layer_mib = largest["size"] / (1 << 20)
    initramfs = re.search(r"\[\s*([\d.]+)\] \$ chroot /target \S+update-initramfs.*?\n.*?\[\s*([\d.]+)\] initramfs",
                          console, flags=re.S)  # fmt: skip
    return {
        "mib": mib, "done": installed, "answering": answering, "download": download_seconds(console),
        "wget": layer_mib / times["wget"], "python": layer_mib / times["python"],
        "initramfs": float(initramfs.group(2)) - float(initramfs.group(1)) if initramfs else float("nan"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 256], help="image sizes in MiB (none: skip)")
    parser.add_argument("--compression", choices=["gz", "zst"], default="gz", help="of the file images")
    parser.add_argument("--debian", action="store_true", help="add the Debian 12 nginx image built from Dockerfiles")
    parser.add_argument("--cpus", type=int, default=1, help="vCPUs of the guest, for the installs and for wget")
    parser.add_argument("--secure-boot", action="store_true",
                        help="add the first size as a UEFI image installed with Secure Boot off and on")  # fmt: skip
    parser.add_argument("--concurrent", type=int, default=0, help="instead: N image stages at once, without QEMU")
    options = parser.parse_args()
    if options.concurrent:
        import install_many  # (bench/, beside this script)

        install_many.main(options.concurrent)
        return
    global CPUS
    CPUS = options.cpus
    registry = None
    if options.debian:
        from tests.registry import Registry

        (WORK / "registry").mkdir()
        registry = Registry(WORK / "registry")
        os.environ["DOCK2BOX_INSECURE_REGISTRIES"] = f"{registry.address},10.0.2.2:{registry.port}"

    import django

    django.setup()
    from django.core.files import File
    from django.core.management import call_command
    from django.utils import timezone

    from hosts import services as host_services
    from hosts.models import Site, Subnet
    from images import services as image_services
    from installer.build import build
    from provisioning.builds.services import host_enter_build
    from provisioning.catalogue.services import boot_defaults_update
    from tests.host_image import MARKER, host_root, tar_directory

    call_command("migrate", verbosity=0)
    cache = ROOT / "var/cache/debian"
    bootenv = build(out=WORK / "bootenv", cache=cache)
    boot = image_services.boot_environment_register(
        image_name="d2b-bootenv", version=bootenv.version, kernel=bootenv.kernel, initrd=bootenv.initrd
    )
    image_services.image_update(image=boot.image, data={"kopts": "console=ttyS0"})
    boot_defaults_update(data={"boot_version": boot, "menu_timeout": MENU_TIMEOUT})
    site = Site.objects.create(name="bench", domain="bench.example.com")
    subnet = Subnet.objects.create(site=site, network="10.0.2.0/24", gateway="10.0.2.2")

    log = (WORK / "gunicorn.log").open("w")
    gunicorn = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "dock2box.wsgi", "--bind",
                                 f"127.0.0.1:{PORT}", "--workers", "3", "--timeout", "600"],
                                cwd=ROOT, stdout=log, stderr=log)  # fmt: skip
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=1), what="gunicorn")

    rows, transfer, debian, secure = [], [], None, None
    try:
        if registry is not None:
            debian = debian_case(bootenv, site, subnet, registry)
        for size in options.sizes:
            root = host_root(
                WORK / f"image-{size}", cache, name=f"bench-{size}", pad_mib=size - 15
            )  # the kernel and its initramfs are the rest
            tarball = WORK / f"bench-{size}.tar.{options.compression}"
            if options.compression == "zst":
                tarball.write_bytes(subprocess.run(["zstd", "-q", "-3", "-c"], input=tar_directory(root),
                                                   capture_output=True, check=True).stdout)  # fmt: skip
            else:
                tarball.write_bytes(tar_directory(root, compression="gz"))
            image = image_services.image_create(
                data={"name": f"bench-{size}", "type": "file", "kopts": "console=ttyS0"}
            )
            with tarball.open("rb") as handle:
                version = image_services.image_version_create(data={
                    "image": image, "version": "1", "timestamp": timezone.now(), "file": File(handle, tarball.name)})  # fmt: skip
            if options.secure_boot and secure is None:
                uefi = image_services.image_create(
                    data={"name": f"bench-{size}-uefi", "type": "file", "kopts": "console=ttyS0", "uefi": True,
                          "gpt": True}
                )  # fmt: skip
                with tarball.open("rb") as handle:
                    image_services.image_version_create(data={
                        "image": uefi, "version": "1", "timestamp": timezone.now(), "file": File(handle, tarball.name)})  # fmt: skip
                secure = (size, secure_boot_case(uefi, site, subnet))
            host = host_services.host_create(
                data={"fqdn": f"bench{size}.bench.example.com", "site": site, "image": image},
                interfaces=[{"name": "eth0", "mac": MAC, "ip": "10.0.2.15", "subnet": subnet}],
            )
            host_enter_build(host=host)
            disk = WORK / f"disk-{size}.img"
            with disk.open("wb") as handle:
                handle.truncate(2 << 30)
            started = time.monotonic()
            seen, console = watch(qemu(disk=disk, bootfile=f"{PORTAL}/boot.ipxe"), ["event image 0", "event done"])
            installed = time.monotonic() - started
            if "event done" not in seen:
                raise SystemExit(f"install of {size} MiB failed:\n{console[-3000:]}")
            download = download_seconds(console)
            seen2, console2 = watch(qemu(disk=disk, bootfile=f"{PORTAL}/boot.ipxe"), [MARKER], timeout=300)
            if MARKER not in seen2:
                raise SystemExit(f"the installed {size} MiB image did not boot:\n{console2[-3000:]}")
            host_services.host_delete(host=host)
            mib = version.size / (1 << 20)
            rows.append((size, mib, seen["event done"], installed + seen2[MARKER], download, mib / download))

            # wget against the installer's download path, same file, same boot environment, no disk.
            times = transfer_times(bootenv, f"{PORTAL}/files/images/bench-{size}/1/file")
            transfer.append((size, mib / times["wget"], mib / times["wgetsha"], mib / times["python"], mib / download))
    finally:
        gunicorn.terminate()
        gunicorn.wait()
        if registry is not None:
            registry.stop()

    print(f"Guest: {CPUS} vCPU, 1 GiB, TCG. Boot menu timeout {MENU_TIMEOUT} s "
          "(the second boot waits that long in the menu before booting its disk).")  # fmt: skip
    print()
    print("| image | compressed MiB | start → done (s) | start → marker (s) | download + apply (s) | MiB/s |")
    print("|---|---|---|---|---|---|")
    for size, mib, done, marker, download, rate in rows:
        print(f"| {size} MiB | {mib:.0f} | {done:.1f} | {marker:.1f} | {download:.1f} | {rate:.1f} |")
    print()
    print(
        "| image | wget MiB/s | wget \\| sha256sum MiB/s (ratio) | installer download only MiB/s (ratio) "
        "| installer download + apply MiB/s (ratio) |"
    )
    print("|---|---|---|---|---|")
    for size, wget, wgetsha, python, install in transfer:
        print(
            f"| {size} MiB | {wget:.1f} | {wgetsha:.1f} ({wgetsha / wget:.2f}) | {python:.1f} ({python / wget:.2f}) "
            f"| {install:.1f} ({install / wget:.2f}) |"
        )

    if secure:
        size, lines = secure
        print()
        print(f"| {size} MiB file image, UEFI | power-on → done (s) | power-on → marker (s) |\n|---|---|---|")
        for name, (done, marker) in lines.items():
            print(f"| Secure Boot {name} | {done:.1f} | {marker:.1f} |")
        ratio = lines["on"][1] / lines["off"][1]
        print(f"\nPower-on → marker with Secure Boot on: {ratio:.2f}x the same image with it off.")

    if debian:
        print()
        print("| Debian 12 nginx image | MiB (compressed layers) | power-on → done (s) | power-on → page answers (s) "
              "| download + apply (s) | MiB/s (ratio to wget) | installer download only MiB/s | wget MiB/s "
              "| update-initramfs (s) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        rate = debian["mib"] / debian["download"]
        print(f"| docker, 3 layers | {debian['mib']:.0f} | {debian['done']:.0f} | {debian['answering']:.0f} "
              f"| {debian['download']:.0f} | {rate:.1f} ({rate / debian['wget']:.2f}) | {debian['python']:.1f} "
              f"| {debian['wget']:.1f} | {debian['initramfs']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()

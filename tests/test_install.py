"""End to end in QEMU: a host PXE-boots the boot environment, the installer lays its image, the disk boots on its own.

The portal is served live on 127.0.0.1 (10.0.2.2 from the guest) with a real registry beside it; the host is created
through /api/v2/ with the VM's MAC; the VM (TCG) starts with an empty virtual disk. Afterwards the disk is checked from
here with `e2fsck -fn` and `debugfs`, and the VM boots again: the portal sends it to its disk, and the installed
image's own init prints a marker on the serial console.
"""

import gzip
import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from dock2box.models import History
from hosts.models import Host
from images import services as image_services
from installer.build import build
from provisioning.builds.services import build_event_record
from provisioning.catalogue.services import boot_defaults_update
from provisioning.models import BuildEvent
from tests.host_image import MARKER, host_root, tar_directory
from tests.qemu import Machine
from tests.registry import Registry, oci_image, tar_of
from tests.services import IpmiSim, wait_until

pytestmark = pytest.mark.slow
VM_MAC = "52:54:00:d2:b0:01"
GiB = 1 << 30


@pytest.fixture(scope="session")
def image_root(tmp_path_factory, debian_cache):
    return host_root(tmp_path_factory.mktemp("host-image"), debian_cache, name="test-image", pad_mib=8)


def create_host(
    api, subnet, image: str | None, build: bool = True, *, fqdn: str = "vm01.lab.example.com", mac: str = VM_MAC,
    ip: str = "10.0.2.15", **settings,
) -> Host:  # fmt: skip
    response = api.post("/api/v2/hosts/", {
        "fqdn": fqdn, "site": "lab1", "image": image, "version": "latest", **settings,
        "interfaces": [{"name": "eth0", "mac": mac, "ip": ip, "subnet": str(subnet.network)}],
    }, format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    host = Host.objects.get(pk=response.json()["id"])
    if build:
        assert api.post(f"/api/v2/hosts/{host.pk}/enter-build/").status_code in (200, 201)
    return host


def install(url: str, workdir: Path, disk_bytes: int = GiB, uefi: bool = False, **hardware) -> tuple[Path, str]:
    disk = workdir / "disk.img"
    with disk.open("wb") as handle:
        handle.truncate(disk_bytes)
    with Machine(mac=VM_MAC, bootfile=f"{url}/boot.ipxe", workdir=workdir, disks=[disk], memory=1024,
                 uefi=uefi, **hardware) as machine:  # fmt: skip
        console = machine.wait_exit(timeout=300)
    return disk, console


def stages(host: Host) -> list[tuple[str, int | None]]:
    events = BuildEvent.objects.filter(build__host=host).order_by("time", "id")
    return [(event.stage, event.progress) for event in events]


def partition(disk: Path, number: int, workdir: Path) -> Path:
    """Partition `number` of a disk image copied out as a sparse file (debugfs and e2fsck read files)."""
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], capture_output=True, check=True).stdout)
    entry = table["partitiontable"]["partitions"][number - 1]
    sector = table["partitiontable"].get("sectorsize", 512)
    return extract(disk, entry["start"] * sector, entry["size"] * sector, workdir / f"part{number}.img")


def logical_volume(disk: Path, number: int, workdir: Path) -> Path:
    """The one linear logical volume on partition `number` (an LVM physical volume), read from its text metadata."""
    pv = partition(disk, number, workdir)
    with pv.open("rb") as handle:
        metadata = handle.read(1 << 20)
    pe_start = int(re.findall(rb"pe_start = (\d+)", metadata)[-1])
    extent_size = int(re.findall(rb"extent_size = (\d+)", metadata)[-1])
    extents = int(re.findall(rb"extent_count = (\d+)", metadata)[-1])
    assert re.findall(rb'stripes = \[\s*"pv0", (\d+)', metadata)[-1] == b"0"  # the volume starts at extent 0
    return extract(pv, pe_start * 512, extents * extent_size * 512, workdir / "lv.img")


def extract(image: Path, offset: int, size: int, out: Path) -> Path:
    with image.open("rb") as source, out.open("wb") as target:
        source.seek(offset)
        remaining = size
        while remaining:
            chunk = source.read(min(remaining, 1 << 20))
            remaining -= len(chunk)
            if chunk.count(0) == len(chunk):
                target.seek(len(chunk), 1)
            else:
                target.write(chunk)
        target.truncate()
    return out


def debugfs(filesystem: Path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(filesystem)], capture_output=True, text=True).stdout


def assert_installed(host: Host, console: str) -> None:
    host.refresh_from_db()
    seen = stages(host)
    assert host.status == "installed" and not host.build, (host.status, seen, console[-3000:])
    assert [stage for stage, _ in seen if stage != "image"][:2] == ["config", "disk"]
    assert [stage for stage, _ in seen][-3:] == ["configure", "bootloader", "done"]
    download = [progress for stage, progress in seen if stage == "image"]
    assert download[0] == 0 and download[-1] == 100 and download == sorted(download)
    steps = [b - a for a, b in itertools.pairwise(download)]
    assert max(steps) <= 10, download  # the download reported at least every 10 %


def assert_disk(disk: Path, workdir: Path, root_number: int = 2, uefi: bool = False, lvm: bool = False) -> Path:
    root = logical_volume(disk, root_number, workdir) if lvm else partition(disk, root_number, workdir)
    check = subprocess.run(["e2fsck", "-fn", str(root)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert debugfs(root, "cat /etc/hostname") == "vm01\n"
    assert "vm01.lab.example.com vm01" in debugfs(root, "cat /etc/hosts")
    assert debugfs(root, "cat /etc/fstab").count("UUID=") == (3 if uefi else 2)
    if not uefi:
        boot = partition(disk, root_number - 1, workdir)
        assert "APPEND root=UUID=" in debugfs(boot, "cat /extlinux/extlinux.conf")
    return root


def boot_installed(url: str, workdir: Path, disk: Path, uefi: bool = False) -> str:
    script = Client().get(f"/ipxe?mac={VM_MAC}").content.decode()
    assert "Boot from local disk" in script and "d2b.config" not in script  # the local-boot default, no install
    with Machine(mac=VM_MAC, bootfile=f"{url}/boot.ipxe", workdir=workdir, disks=[disk], uefi=uefi) as machine:
        return machine.wait_for(MARKER, timeout=150)


def add_file_image(image_root: Path, compression: str = "gz", **settings) -> None:
    """The test image as the file image `test-file` version 1 (stored in the portal), with image settings."""
    data = {"name": "test-file", "type": "file", "kopts": "console=ttyS0", **settings}
    image_services.image_version_create(data={
        "image": image_services.image_create(data=data), "version": "1", "timestamp": timezone.now(),
        "file": ContentFile(tar_directory(image_root, compression=compression), name=f"test-file-1.tar.{compression}"),
    })  # fmt: skip


@pytest.mark.parametrize("uefi", [False, True], ids=["bios", "uefi"])
def test_a_file_image_installs_and_the_disk_boots_it(portal, image_root, tmp_path, uefi):
    url, api, _site, subnet = portal
    add_file_image(image_root, uefi=uefi, gpt=uefi)
    host = create_host(api, subnet, "test-file")

    disk, console = install(url, tmp_path, uefi=uefi)
    assert_installed(host, console)
    root = assert_disk(disk, tmp_path, root_number=3 if uefi else 2, uefi=uefi)
    assert "iface eth0 inet static" in debugfs(root, "cat /etc/network/interfaces")  # the image has ifupdown (busybox)
    assert "nameserver 10.0.2.3" in debugfs(root, "cat /etc/resolv.conf")

    console = boot_installed(url, tmp_path, disk, uefi=uefi)
    assert f"{MARKER} host=vm01 image=test-image fstab={3 if uefi else 2}" in console


def test_a_lost_done_never_reinstalls_the_host(portal, image_root, tmp_path, monkeypatch):
    """The portal is away when the installer says `done` (here: it answers 500 to it). The installer retries on the
    console for its bound, reboots, PXE-boots again and is sent to its disk, not into a second install."""
    url, api, _site, subnet = portal
    add_file_image(image_root)
    host = create_host(api, subnet, "test-file", kopts="d2b.report_wait=6")
    record = build_event_record

    def away_for_done(*, build, stage, **kwargs):
        if stage == "done":
            raise ConnectionError("the portal is restarting")
        return record(build=build, stage=stage, **kwargs)

    monkeypatch.setattr("provisioning.builds.views.build_event_record", away_for_done)
    disk, console = install(url, tmp_path)
    assert "done not delivered (portal error 500" in console and "done NOT delivered after" in console
    build = host.builds.get()
    assert (build.state, build.bootloader_started is not None) == ("running", True)

    with Machine(mac=VM_MAC, bootfile=f"{url}/boot.ipxe", workdir=tmp_path, disks=[disk]) as machine:
        console = machine.wait_for(MARKER, timeout=150)
    assert "Note: the install wrote its bootloader" in console and "d2b: " not in console  # no installer ran
    build.refresh_from_db()
    host.refresh_from_db()
    assert (build.state, build.token, host.build, host.status) == ("unconfirmed", None, False, "unconfirmed")
    assert [stage for stage, _ in stages(host)].count("config") == 1


def test_one_reinstall_through_the_bmc_powers_on_installs_and_reboots_into_the_disk(portal, image_root, tmp_path):
    """The machine is off; its BMC is OpenIPMI's simulator, which starts and stops the QEMU process. One Reinstall
    through the API, and nothing else touching QEMU: power on, PXE, install, `done`, reboot, the installed system."""
    url, api, _site, subnet = portal
    add_file_image(image_root)
    host = create_host(api, subnet, "test-file", build=False)
    disk = tmp_path / "disk.img"
    with disk.open("wb") as handle:
        handle.truncate(GiB)
    console = tmp_path / "console.log"
    guest = Machine(mac=VM_MAC, bootfile=f"{url}/boot.ipxe", workdir=tmp_path, disks=[disk], memory=1024)
    sim = IpmiSim(tmp_path / "bmc", startcmd=guest.bmc_command(console)).start()
    try:
        assert sim.power() == "off"
        answer = api.post("/api/v2/bmcs/", {"host": host.fqdn, "address": "127.0.0.1", "port": sim.port,
                                            "username": sim.USER, "password": sim.PASSWORD}, format="json")  # fmt: skip
        assert answer.status_code == 201, answer.content
        assert api.post(f"/api/v2/hosts/{host.pk}/power/", {"action": "reinstall"}, format="json").status_code == 202
        wait_until(lambda: MARKER in console.read_text(errors="replace"), timeout=480, what="the installed system")
    finally:
        sim.stop()
        subprocess.run(["pkill", "-f", str(disk)])
    text = console.read_text(errors="replace")
    assert_installed(host, text)
    assert f"{MARKER} host=vm01 image=test-image fstab=2" in text
    bmc = host.bmc
    bmc.refresh_from_db()
    assert (bmc.last_action, bmc.last_result, bmc.power_state) == ("reinstall", "done", "on")
    said = [line.action for line in History.objects.filter(kind="host", object_id=host.pk).order_by("id")]
    assert said[-4:] == ["reinstall requested", "build mode entered", "reinstall", "installed"], said


@pytest.fixture(scope="session")
def generic_bootenv(tmp_path_factory, debian_cache):
    return build(out=tmp_path_factory.mktemp("bootenv-generic"), flavour="generic", cache=debian_cache)


def test_the_generic_boot_environment_installs_on_an_intel_nic_and_a_sata_disk(
    portal, generic_bootenv, image_root, tmp_path
):
    """Real hardware's drivers (e1000, AHCI) come with the generic kernel, loaded by modalias. Checked on the disk:
    the test image's own initramfs only knows virtio."""
    url, api, _site, subnet = portal
    built = generic_bootenv
    boot = image_services.boot_environment_register(
        image_name="d2b-bootenv-generic", version=built.version, kernel=built.kernel, initrd=built.initrd
    )
    image_services.image_update(image=boot.image, data={"kopts": "console=ttyS0"})
    boot_defaults_update(data={"boot_version": boot})
    add_file_image(image_root)
    host = create_host(api, subnet, "test-file")
    disk, console = install(url, tmp_path, nic="e1000", sata=True)
    assert f"boot environment {built.version} on 6.1.0-" in console
    assert "partitioning /dev/sda" in console
    assert_installed(host, console)
    assert_disk(disk, tmp_path)


def test_lvm_puts_the_root_filesystem_on_a_logical_volume(portal, image_root, tmp_path):
    """The test image's initramfs has no LVM, so this one is checked on the disk only."""
    url, api, _site, subnet = portal
    add_file_image(image_root, compression="xz", volmgt="lvm")
    host = create_host(api, subnet, "test-file")
    disk, console = install(url, tmp_path)
    assert_installed(host, console)
    assert "lvcreate" in console and "vg-vm01" in console
    root = assert_disk(disk, tmp_path, lvm=True)
    assert debugfs(root, "cat /etc/test-image") == "test-image\n"


@pytest.fixture
def registry(tmp_path, settings):
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry", user="puller", password="s3cret-pull")
    settings.DOCK2BOX_INSECURE_REGISTRIES = [registry.address]
    yield registry
    registry.stop()


def push_docker_image(registry: Registry, image_root: Path, workdir: Path) -> dict:
    """Two layers: the second deletes a file (whiteout), empties a directory (opaque) and renames the image."""
    base = tar_directory(image_root) + b""
    extra = tar_of({"etc/obsolete": b"old\n", "opt/old/x": b"x\n"})
    top = tar_of({"etc/.wh.obsolete": b"", "opt/old/.wh..wh..opq": b"", "opt/old/y": b"y\n",
                  "etc/test-image": b"test-docker\n"})  # fmt: skip
    built = oci_image(workdir / "layout", "v1", [base, extra, top], as_index=True, level=1)
    registry.push(workdir / "layout", "v1", "lab/test-docker")
    return built


def test_a_docker_image_installs_from_the_registry_and_the_disk_boots_it(
    portal, registry, image_root, tmp_path, settings
):
    url, api, site, subnet = portal
    push_docker_image(registry, image_root, tmp_path)
    site.registry, site.registry_username, site.registry_password = registry.address, "puller", "s3cret-pull"
    site.save()
    image = image_services.image_create(data={"name": "test-docker", "type": "docker", "repository": "lab/test-docker",
                                              "kopts": "console=ttyS0"})  # fmt: skip
    version = image_services.image_version_create(data={"image": image, "version": "v1", "timestamp": timezone.now()})
    assert api.post(f"/api/v2/image-versions/{version.pk}/resolve/").status_code == 202  # a task (eager here)
    version.refresh_from_db()
    assert len(version.layers) == 3
    site.registry = f"10.0.2.2:{registry.port}"  # the same registry as the guest reaches it
    site.save()
    settings.DOCK2BOX_INSECURE_REGISTRIES = [site.registry]
    host = create_host(api, subnet, "test-docker", gpt=True)

    disk, console = install(url, tmp_path)
    assert_installed(host, console)
    root = assert_disk(disk, tmp_path)
    assert debugfs(root, "cat /opt/old/y") == "y\n"
    listing = debugfs(root, "ls -l /opt/old") + debugfs(root, "ls -l /etc")
    assert " x\n" not in listing.replace("  ", " ") and "obsolete" not in listing  # whiteouts applied
    console = boot_installed(url, tmp_path, disk)
    assert f"{MARKER} host=vm01 image=test-docker fstab=2" in console


def corrupt_a_layer(registry: Registry, built: dict) -> None:
    """Flip bytes in the middle of the last layer as the registry stores it (its size stays the same)."""
    digest = built["layers"][-1]["digest"].split(":")[1]
    data = registry.workdir / "data/docker/registry/v2/blobs/sha256" / digest[:2] / digest / "data"
    content = bytearray(data.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 16] = bytes(16)
    data.write_bytes(bytes(content))


def docker_image_of(registry: Registry, site, settings, api, subnet, repository: str) -> Host:
    """A host in build mode with the docker image `repository:v1` from the test registry (as the guest reaches it)."""
    site.registry, site.registry_username, site.registry_password = registry.address, "puller", "s3cret-pull"
    site.save()
    image = image_services.image_create(data={"name": "test-docker", "type": "docker", "repository": repository})
    image_services.image_version_create(data={"image": image, "version": "v1", "timestamp": timezone.now()})
    site.registry = f"10.0.2.2:{registry.port}"
    site.save()
    settings.DOCK2BOX_INSECURE_REGISTRIES = [site.registry]
    return create_host(api, subnet, "test-docker")


@pytest.mark.parametrize("failure", ["disk-too-small", "corrupted-layer", "unknown-compression", "no-kernel"])
def test_a_failing_install_ends_failed_with_its_reason(portal, registry, image_root, tmp_path, settings, failure):
    """Each ends `failed` with the stage and the reason, the machine left at its console (not rebooted into another
    install); what the manifest shows is refused before the disk is touched."""
    url, api, site, subnet = portal
    disk = tmp_path / "disk.img"
    size = GiB
    if failure == "disk-too-small":
        add_file_image(image_root)
        host = create_host(api, subnet, "test-file")
        size, stage, reason = 64 << 20, "disk", "/dev/vda has 64 MiB; this image and layout need at least"
    elif failure == "corrupted-layer":
        built = push_docker_image(registry, image_root, tmp_path)
        corrupt_a_layer(registry, built)
        host = docker_image_of(registry, site, settings, api, subnet, "lab/test-docker")
        stage, reason = "image", f"{built['layers'][-1]['digest']} is corrupt"
    elif failure == "unknown-compression":
        registry.put_image("lab/odd", "v1", [("application/vnd.oci.image.layer.v1.tar+lz4", b"\x04\x22\x4d\x18" * 64)])
        host = docker_image_of(registry, site, settings, api, subnet, "lab/odd")
        stage, reason = "config", "cannot read: ['application/vnd.oci.image.layer.v1.tar+lz4']"
    else:
        layer = gzip.compress(tar_of({"etc/os-release": b"ID=app\n", "usr/bin/app": b"#!/bin/sh\n"}))
        registry.put_image("lab/app-only", "v1", [("application/vnd.oci.image.layer.v1.tar+gzip", layer)])
        host = docker_image_of(registry, site, settings, api, subnet, "lab/app-only")
        stage, reason = "image", "the image has no kernel in /boot"
    token = host.builds.get().token
    with disk.open("wb") as handle:
        handle.truncate(size)
    with Machine(mac=VM_MAC, bootfile=f"{url}/boot.ipxe", workdir=tmp_path, disks=[disk], memory=1024) as machine:
        machine.wait_for("event failed", "console is yours", timeout=180)

    host.refresh_from_db()
    assert (host.status, host.build) == ("failed", False), stages(host)
    failed = BuildEvent.objects.get(build__host=host, stage="failed")
    assert failed.message.startswith(f"{stage}: ") and reason in failed.message.splitlines()[0], failed.message
    assert "$ " in failed.message  # the log tail of the failing step
    assert Client().get(f"/config/{token}").status_code == 403
    assert "d2b.config" not in Client().get(f"/ipxe?mac={VM_MAC}").content.decode()  # no second install
    if stage == "config":
        with disk.open("rb") as written:
            assert written.read(1 << 20) == bytes(1 << 20)  # refused before the disk was touched

"""A Dockerfile becomes a running server: real Debian images, built from the shipped recipes, installed and booted.

Debian 12 and 13 bases are built with buildah from deploy/images (FROM a minbase root pushed to the suite's registry
as `library/debian:<suite>`), the example nginx application FROM them, all pushed to a real registry. Dock2Box
resolves the version there; QEMU (TCG) PXE-boots, installs on an empty disk, and the disk boots on its own into the
image's systemd. From here, over ports QEMU forwards to the guest's portal-assigned address: the page, an SSH login
with the site's key, `hostname`, `systemctl is-system-running`, the machine-id and host keys; and the portal shows
each host deployed after its first-boot report, or not reporting when its report cannot get through.
"""

import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from hosts.models import Host
from images import services as image_services
from provisioning.models import Build
from tests.debian_images import DebianImages, layer_types
from tests.qemu import Machine
from tests.registry import Registry
from tests.services import free_port, wait_until
from tests.test_install import create_host

pytestmark = pytest.mark.slow
GiB = 1 << 30
ROOT_HASH = "$6$dock2box$" + "x" * 86  # a well-formed SHA-512 crypt hash nobody can log in with
# Secure Boot as the running system sees it: the firmware's variable, 4 attribute bytes and then 1 when it is on.
SECURE_BOOT_STATE = "printf SecureBoot=; od -An -t u1 -j 4 -N 1 /sys/firmware/efi/efivars/SecureBoot-* | tr -d ' '"
PROBE = "hostname; cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub; systemctl is-system-running --wait; " \
        "systemctl --failed --no-legend --plain; ip -4 -o addr show; grep ^root: /etc/shadow"  # fmt: skip


@pytest.fixture
def site_key(portal, tmp_path):
    """The site's root SSH key (its private half here) and root password hash."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "site-lab1", "-f", str(key)], check=True)
    _url, _api, site, _subnet = portal
    site.ssh_authorized_keys = (tmp_path / "id_ed25519.pub").read_text()
    site.root_password_hash = ROOT_HASH
    site.save()
    return key


def add_image(portal, registry: Registry, settings, built: DebianImages, *, uefi: bool = False, kopts: str = "") -> str:
    """The application as a docker image of the portal (UEFI/GPT or BIOS/MBR: an image's setting), its version
    resolved in the registry, then reached as the guest reaches it: 10.0.2.2."""
    _url, api, site, _subnet = portal
    site.registry = registry.address
    site.save()
    settings.DOCK2BOX_INSECURE_REGISTRIES = [registry.address, f"10.0.2.2:{registry.port}"]
    name = f"web-{built.release}{'-uefi' if uefi else ''}"
    repository, tag = built.app.split(":")
    image = image_services.image_create(data={"name": name, "type": "docker", "repository": repository,
                                              "kopts": f"console=ttyS0 {kopts}".strip(), "uefi": uefi,
                                              "gpt": uefi})  # fmt: skip
    version = image_services.image_version_create(data={"image": image, "version": tag, "timestamp": timezone.now()})
    assert api.post(f"/api/v2/image-versions/{version.pk}/resolve/").status_code == 202  # a task (eager here)
    version.refresh_from_db()
    assert version.digest == built.app_digest, (version.digest, built.app_digest)
    site.registry = f"10.0.2.2:{registry.port}"
    site.save()
    return name


@dataclass
class Booted:
    install_console: str
    page: str
    probe: list[str]
    console: str


def ssh(port: int, key: Path, command: str, *, timeout: float = 180) -> str:
    """`command`'s output as root over SSH, retried while sshd is not up yet (the page may answer first)."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            ["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o",
             "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
             "root@127.0.0.1", command],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode in (0, 1):  # 1: is-system-running says degraded (the failed units are listed)
            return done.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"ssh: {done.returncode} {done.stdout}{done.stderr}")
        time.sleep(2)


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return response.read().decode()


def deploy(
    workdir: Path, key: Path, host: Host, ip: str, *, boot: dict[str, Any], restrict: bool = False, probe: str = PROBE
) -> Booted:
    """Install `host` on an empty disk in QEMU, boot the disk, and probe the running system over forwarded ports.
    `boot`: how the machine boots (`Machine`'s arguments: its first stage, its firmware). With `restrict`, the
    installed system reaches nothing outside (its first-boot report cannot get through)."""
    mac = host.interfaces.get().mac
    workdir.mkdir()
    disk = workdir / "disk.img"
    with disk.open("wb") as handle:
        handle.truncate(4 * GiB)
    with Machine(mac=mac, workdir=workdir, disks=[disk], memory=1024, **boot) as machine:
        install_console = machine.wait_exit(timeout=900)
    http, ssh_port = free_port(), free_port()
    again = {**boot, "bootfile": "" if restrict else boot["bootfile"]}
    with Machine(mac=mac, workdir=workdir, disks=[disk], memory=1024, forwards=[(http, ip, 80), (ssh_port, ip, 22)],
                 restrict=restrict, **again) as machine:  # fmt: skip
        try:
            wait_until(lambda: "Dock2Box build" in page(http), timeout=400, what="the application's page")
            probe = ssh(ssh_port, key, probe).splitlines()
            if not restrict:  # the report is sent once the system is up: wait for it while the machine runs
                wait_until(lambda: Host.objects.get(pk=host.pk).status == "deployed", timeout=180,
                           what="the first-boot report")  # fmt: skip
        except (AssertionError, TimeoutError) as error:
            raise AssertionError(
                f"{error}\ninstall:\n{install_console[-3000:]}\nboot:\n{machine.console[-5000:]}"
            ) from error
        finally:
            connection.close()  # this thread's database connection
            (workdir / "install.log").write_text(install_console)  # kept for a look after a failure
            (workdir / "boot.log").write_text(machine.console)
        return Booted(install_console, page(http), probe, machine.console)


def assert_running(booted: Booted, hostname: str, ip: str, built: DebianImages) -> None:
    name, machine_id, host_key, state, *rest = booted.probe
    assert booted.page.strip() == f"Dock2Box build {built.app_name}"
    assert name == hostname
    assert state == "running", (state, rest)  # else the failed units follow in `rest`
    assert any(f"inet {ip}/24" in line for line in rest), rest  # the portal's address, not one QEMU's DHCP gave
    assert any(line.startswith(f"root:{ROOT_HASH}:") for line in rest)
    assert len(machine_id) == 32 and int(machine_id, 16)
    assert host_key.startswith("ssh-ed25519 ") and host_key.encode() != built.image_host_key.strip()


def test_a_debian_12_dockerfile_becomes_three_running_servers_bios_uefi_and_secure_boot(
    portal, site_key, debian_registry, bookworm, settings, tmp_path, secure_boot
):
    """Three hosts from one registry image, installed at once (BIOS/MBR and UEFI/GPT, a setting of two portal images
    naming it; the third UEFI with Secure Boot enforced by its firmware, booted by shim and Debian's signed GRUB
    through our TFTP server): each runs the application under its own name and address, with a machine-id and SSH
    host keys of its own, and each is deployed with the image's digest. The Secure Boot one runs with Secure Boot
    on, its disk booted the same way (shim, signed GRUB, signed kernel), and its build says so."""
    url, api, _site, subnet = portal
    ipxe = {"bootfile": f"{url}/boot.ipxe"}
    types = layer_types(debian_registry.address, bookworm.app)
    assert types[-1] == "application/vnd.oci.image.layer.v1.tar+zstd" and len(types) == 3, types
    bios, uefi = (add_image(portal, debian_registry, settings, bookworm, uefi=uefi) for uefi in (False, True))
    hosts = [
        (create_host(api, subnet, bios, fqdn="bios.lab.example.com", mac="52:54:00:d2:b1:01", ip="10.0.2.50"),
         "10.0.2.50", False),
        (create_host(api, subnet, uefi, fqdn="uefi.lab.example.com", mac="52:54:00:d2:b1:02", ip="10.0.2.51"),
         "10.0.2.51", True),
        (create_host(api, subnet, uefi, fqdn="secure.lab.example.com", mac="52:54:00:d2:b1:04", ip="10.0.2.53",
                     secure_boot=True), "10.0.2.53", None),
    ]  # fmt: skip
    boots = {False: ipxe, True: {**ipxe, "uefi": True}, None: secure_boot[0]}
    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        probes = {False: PROBE, True: PROBE, None: f"{PROBE}; {SECURE_BOOT_STATE}"}
        runs = [
            pool.submit(deploy, tmp_path / host.hostname, site_key, host, ip, boot=boots[uefi], probe=probes[uefi])
            for host, ip, uefi in hosts
        ]
        booted = [run.result() for run in runs]
    print(f"three Debian 12 hosts installed, booted and probed in {time.monotonic() - started:.0f} s")

    for (host, ip, _uefi), result in zip(hosts, booted, strict=True):
        assert_running(result, host.hostname, ip, bookworm)
        assert "is generic (initramfs-tools, MODULES=most): kept" in result.install_console
        assert "SSH host keys made for this host" in result.install_console
        host.refresh_from_db()
        assert (host.status, host.deployed_digest) == ("deployed", bookworm.app_digest)
        assert 0 < host.boot_seconds < 900
        build = Build.objects.get(host=host)
        assert (build.state, build.booted_digest) == ("done", bookworm.app_digest)
    (_, bios_id, bios_key, *_), (_, uefi_id, uefi_key, *_), (_, secure_id, *_) = (result.probe for result in booted)
    assert len({bios_id, uefi_id, secure_id}) == 3 and bios_key != uefi_key
    secure = booted[2]
    assert secure.probe[-1] == "SecureBoot=1"  # inside the installed system: the firmware enforces it
    assert "Welcome to GRUB!" in secure.install_console and "shim and signed GRUB (the boot environment's)" in (
        secure.install_console
    )
    build = Build.objects.get(host=hosts[2][0])
    assert (build.chain, build.secure_boot) == ("shim-grub", True)
    assert "Secure Boot on" in build.events.get(stage="booted").message
    assert (Build.objects.get(host=hosts[1][0]).chain, Build.objects.get(host=hosts[1][0]).secure_boot) == (
        "ipxe",
        False,
    )
    data = api.get(f"/api/v2/hosts/{hosts[0][0].pk}/").json()
    assert (data["deployment"], data["deployed_digest"]) == ("deployed", bookworm.app_digest)


def test_a_debian_13_server_runs_and_is_shown_not_reporting_when_its_report_is_blocked(
    portal, site_key, debian_registry, trixie, settings, tmp_path
):
    """Debian 13 from its recipe, installed and booted the same way, its initramfs made again on the host (asked for
    with `d2b.initramfs=rebuild`); its network reaches nothing but the forwarded ports, so its first-boot report
    cannot get through: once the time is up the portal says so."""
    url, api, _site, subnet = portal
    image = add_image(portal, debian_registry, settings, trixie, kopts="d2b.initramfs=rebuild")
    host = create_host(api, subnet, image, fqdn="trixie.lab.example.com", mac="52:54:00:d2:b1:03", ip="10.0.2.52")
    booted = deploy(tmp_path / "trixie", site_key, host, "10.0.2.52", boot={"bootfile": f"{url}/boot.ipxe"},
                    restrict=True)  # fmt: skip
    assert_running(booted, "trixie", "10.0.2.52", trixie)
    assert "made by the image's update-initramfs" in booted.install_console
    host.refresh_from_db()
    assert host.status == "installed"
    assert api.get(f"/api/v2/hosts/{host.pk}/").json()["deployment"] == "awaiting its first boot"
    settings.DOCK2BOX_FIRST_BOOT_TIMEOUT = max(1, int((timezone.now() - host.installed).total_seconds()) - 1)
    data = api.get(f"/api/v2/hosts/{host.pk}/").json()
    assert (data["status"], data["deployment"], data["deployed_digest"]) == ("installed", "not reporting", "")

"""Secure Boot in QEMU (TCG): firmware that enforces it (OVMF with Microsoft's keys) refuses the unsigned iPXE and
runs Debian's signed shim → signed GRUB, which reads the host's menu from the portal through our TFTP server."""

import shutil
import socket
import subprocess
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

from provisioning.boot.binaries import GRUB, SHIM
from tests.qemu import Machine
from tests.services import free_port, manage, stop, wait_until
from tests.test_qemu_boot import VM_MAC, portal  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow


@pytest.fixture
def firmware_tftp(portal, live_server, tmp_path):  # noqa: F811
    """What the firmware's PXE reaches on port 69 (QEMU's own TFTP server, a directory): shim, GRUB beside it, and
    GRUB's first config standing in for our server there: it goes on from `manage.py tftpd` on its own port, which
    relays what the portal answers."""
    url, _ = portal
    port = free_port(socket.SOCK_DGRAM)
    log = tmp_path / "tftpd.log"
    reach = f"http://127.0.0.1:{urlsplit(live_server.url).port}"
    process = manage("tftpd", "--bind", "127.0.0.1", "--port", str(port),
                     env={"DOCK2BOX_PUBLIC_URL": url, "DOCK2BOX_TFTP_PORTAL_URL": reach},
                     stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    wait_until(lambda: "serving" in log.read_text(), what="tftpd")
    directory = tmp_path / "firmware-tftp"
    (directory / "grub").mkdir(parents=True)
    shutil.copyfile(django_settings.DOCK2BOX_SHIM_EFI, directory / SHIM)
    shutil.copyfile(django_settings.DOCK2BOX_GRUB_EFI, directory / GRUB)
    shutil.copyfile("/usr/lib/ipxe/ipxe.efi", directory / "ipxe.efi")
    (directory / "grub/grub.cfg").write_text(f"set root=tftp,10.0.2.2:{port}\nconfigfile /grub/grub.cfg\n")
    yield directory, log
    stop(process)


def test_secure_boot_firmware_refuses_unsigned_ipxe_and_runs_the_signed_chain_to_the_hosts_menu(
    portal,  # noqa: F811
    firmware_tftp,
    tmp_path,
):
    directory, log = firmware_tftp
    _, requests = portal
    with Machine(mac=VM_MAC, bootfile="ipxe.efi", tftp=directory, workdir=tmp_path, secure_boot=True) as machine:
        refused = machine.wait_for("NBP file downloaded successfully", "Access Denied", timeout=150)
    assert "iPXE" not in refused.split("NBP file downloaded successfully", 1)[1]  # it never ran

    (tmp_path / "signed").mkdir()
    with Machine(mac=VM_MAC, bootfile=SHIM, tftp=directory, workdir=tmp_path / "signed", secure_boot=True) as machine:
        console = machine.wait_for("hostname: qemu01.lab.example.com", "Boot from local disk", timeout=180)
    assert "Welcome to GRUB!" in console and "Access Denied" not in console
    assert "--delete Dock2Box lab" in console  # the menu's title, as text
    assert f"tftp file=grub/host-{VM_MAC}.cfg client=127.0.0.1" in log.read_text()
    assert f"boot mac={VM_MAC} host=qemu01.lab.example.com platform=efi loader=grub outcome=known" in requests.lines

"""Secure Boot in QEMU (TCG): firmware that enforces it (OVMF with Microsoft's keys) refuses the unsigned iPXE and
runs Debian's signed shim → signed GRUB, which reads the host's menu from the portal through our TFTP server. (The
install under Secure Boot, to a disk that boots the same way: tests/test_debian.py.)"""

import pytest

from tests.qemu import Machine
from tests.test_install import VM_MAC, create_host

pytestmark = pytest.mark.slow


def test_secure_boot_firmware_refuses_unsigned_ipxe_and_runs_the_signed_chain_to_the_hosts_menu(
    portal, secure_boot, tmp_path, caplog
):
    _url, api, _site, subnet = portal
    machine, log = secure_boot
    create_host(api, subnet, None, build=False, fqdn="vm01.lab.example.com", secure_boot=True)
    with Machine(mac=VM_MAC, workdir=tmp_path, **{**machine, "bootfile": "ipxe.efi"}) as guest:
        refused = guest.wait_for("NBP file downloaded successfully", "Access Denied", timeout=150)
    assert "iPXE" not in refused.split("NBP file downloaded successfully", 1)[1]  # it never ran

    (tmp_path / "signed").mkdir()
    with Machine(mac=VM_MAC, workdir=tmp_path / "signed", **machine) as guest:
        console = guest.wait_for("hostname: vm01.lab.example.com", "Boot from local disk", timeout=180)
    assert "Welcome to GRUB!" in console and "Access Denied" not in console
    assert f"tftp file=grub/host-{VM_MAC}.cfg client=127.0.0.1" in log.read_text()
    assert f"boot mac={VM_MAC} host=vm01.lab.example.com platform=efi loader=grub outcome=known" in caplog.text

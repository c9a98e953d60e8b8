"""Secure Boot in QEMU (TCG): firmware that enforces it (OVMF with Microsoft's keys) refuses the unsigned iPXE and
runs Debian's signed shim → signed GRUB, which reads the host's menu from the portal through our TFTP server (the
install under Secure Boot, to a disk that boots the same way: tests/test_debian.py); and UEFI HTTP boot, on a LAN of
the test's own with dnsmasq as its DHCP server, gets iPXE by URL from the portal with no TFTP server at all."""

import os
import subprocess
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from tests import factories
from tests.qemu import Machine
from tests.services import free_port
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


@pytest.fixture
def http_boot_lan(portal, live_server, tmp_path, settings):
    """A LAN of the test's own: a tap device (10.77.0.1/24) with dnsmasq as its DHCP server, configured by `manage.py
    dhcp_config --format dnsmasq`, the portal reached at 10.77.0.1 (socat to the live server) and no TFTP server."""
    _url, api, site, _subnet = portal
    tap, address, port = f"d2bhttp{os.getpid() % 10000}", "10.77.0.1", free_port()
    url = f"http://{address}:{port}"
    settings.DOCK2BOX_PUBLIC_URL = url
    subnet = factories.SubnetFactory(site=site, network="10.77.0.0/24", gateway=address, dhcp=True)
    subprocess.run(["ip", "tuntap", "add", tap, "mode", "tap"], check=True)
    processes = []
    try:
        subprocess.run(["ip", "addr", "add", f"{address}/24", "dev", tap], check=True)
        subprocess.run(["ip", "link", "set", tap, "up"], check=True)
        forward = f"TCP:127.0.0.1:{urlsplit(live_server.url).port}"
        processes.append(subprocess.Popen(["socat", f"TCP-LISTEN:{port},bind={address},fork,reuseaddr", forward]))
        yield api, subnet, tap, url, tmp_path / "dnsmasq.conf", processes
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        subprocess.run(["ip", "link", "del", tap], check=False)


def test_uefi_http_boot_gets_ipxe_by_url_from_the_portal_with_no_tftp_server(http_boot_lan, tmp_path):
    api, subnet, tap, url, conf, processes = http_boot_lan
    mac = "52:54:00:d2:b7:01"
    create_host(api, subnet, None, build=False, fqdn="http.lab.example.com", mac=mac, ip="10.77.0.20")
    out = StringIO()
    call_command("dhcp_config", "--format", "dnsmasq", "--tftp-server", "10.77.0.1", stdout=out)
    conf.write_text(out.getvalue())
    processes.append(subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}", f"--interface={tap}", "--bind-interfaces",
         "--except-interface=lo", "--port=0", f"--dhcp-leasefile={tmp_path}/leases", "--log-dhcp",
         f"--log-facility={tmp_path}/dnsmasq.log", f"--pid-file={tmp_path}/dnsmasq.pid"],
    ))  # fmt: skip
    with Machine(mac=mac, bootfile="", workdir=tmp_path, tap=tap) as guest:
        console = guest.wait_for("hostname: http.lab.example.com", "Boot from local disk", timeout=240)
    assert "Start HTTP Boot over IPv4" in console, console[-3000:]
    assert f"{url}/boot/snponly.efi" in console
    assert "efihttp" in (tmp_path / "dnsmasq.log").read_text()  # the rule for arch 16 answered it

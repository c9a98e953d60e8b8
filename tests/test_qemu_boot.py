"""A real iPXE client (QEMU, TCG) boots from the portal served live on 127.0.0.1: BIOS and UEFI, HTTP and TFTP."""

import logging
import socket
from urllib.parse import urlsplit

import pytest

from hosts.models import Host
from provisioning.catalogue.services import boot_defaults_update
from tests import factories
from tests.qemu import Machine
from tests.services import free_port, manage, stop, wait_until

pytestmark = pytest.mark.slow
VM_MAC = "52:54:00:12:34:56"


class Requests(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def portal(live_server, transactional_db, settings):
    """The live portal as the guest reaches it (10.0.2.2 is the host's loopback), with a host for the VM's MAC."""
    url = f"http://10.0.2.2:{urlsplit(live_server.url).port}"
    settings.DOCK2BOX_PUBLIC_URL = url
    settings.ALLOWED_HOSTS = ["*"]
    boot_defaults_update(data={"menu_timeout": 30, "menu_name": "--delete Dock2Box lab"})  # never an option
    site = factories.SiteFactory(name="lab1", domain="lab.example.com")
    subnet = factories.SubnetFactory(site=site, network="10.0.2.0/24", gateway="10.0.2.2")
    host = factories.HostFactory(fqdn="qemu01.lab.example.com", site=site)
    factories.InterfaceFactory(host=host, mac=VM_MAC, ip="10.0.2.15", subnet=subnet)
    requests = Requests()
    logging.getLogger("dock2box.boot").addHandler(requests)
    yield url, requests
    logging.getLogger("dock2box.boot").removeHandler(requests)


@pytest.fixture
def tftp(portal, tmp_path):
    url, _ = portal
    port = free_port(socket.SOCK_DGRAM)
    log = (tmp_path / "tftpd.log").open("w")
    process = manage("tftpd", "--bind", "127.0.0.1", "--port", str(port), env={"DOCK2BOX_PUBLIC_URL": url},
                     stdout=log, stderr=log)  # fmt: skip
    wait_until(lambda: "serving" in (tmp_path / "tftpd.log").read_text(), what="tftpd")
    yield port
    stop(process)


def _boot_and_check(portal, bootfile: str, tmp_path, uefi: bool) -> None:
    _, requests = portal
    with Machine(mac=VM_MAC, bootfile=bootfile, workdir=tmp_path, uefi=uefi) as machine:
        console = machine.wait_for("hostname: qemu01.lab.example.com", "Boot from local disk", timeout=150)
    assert f"mac: {VM_MAC}" in console and "--delete Dock2Box lab" in console
    assert any(line.startswith("boot script=boot.ipxe") for line in requests.lines), requests.lines
    platform = "efi" if uefi else "pcbios"
    boot = f"boot mac={VM_MAC} host=qemu01.lab.example.com platform={platform} loader=ipxe outcome=known"
    assert boot in requests.lines
    assert Host.objects.get(fqdn="qemu01.lab.example.com").last_seen is not None


@pytest.mark.parametrize("uefi", [False, True], ids=["bios", "uefi"])
def test_guest_boots_its_menu_over_http(portal, tmp_path, uefi):
    url, _ = portal
    _boot_and_check(portal, f"{url}/boot.ipxe", tmp_path, uefi)


@pytest.mark.parametrize("uefi", [False, True], ids=["bios", "uefi"])
def test_guest_boots_its_menu_through_our_tftp_server(portal, tftp, tmp_path, uefi):
    _boot_and_check(portal, f"tftp://10.0.2.2:{tftp}/stage0.ipxe", tmp_path, uefi)

"""DHCP snippets: what an operator pastes into dhcpd or dnsmasq, checked by those programs themselves."""

import re
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command

from tests import factories
from tests.boot_world import make_world
from tests.test_boot import golden


@pytest.fixture
def world(db, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    world = make_world()
    factories.SubnetFactory(
        site=world.site, network="10.5.0.0/24", gateway="10.5.0.1", dhcp=True, dns_servers="10.5.0.2",
        reserved="10.5.0.100-10.5.0.109",
    )  # fmt: skip
    factories.SubnetFactory(site=world.site, network="2001:db8::/64")
    # Secure Boot: a host of ams1 with it on; a site with it on, and a host there with it off.
    world.idle_host.secure_boot = True
    world.idle_host.save()
    secure = factories.SiteFactory(name="sb1", domain="sb1.example.com", secure_boot=True)
    subnet = factories.SubnetFactory(site=secure, network="10.6.0.0/24", gateway="10.6.0.1", dhcp=True)
    for name, mac, address, secure_boot in [("new", "52:54:00:00:06:01", "10.6.0.11", None),
                                            ("old", "52:54:00:00:06:02", "10.6.0.12", False)]:  # fmt: skip
        host = factories.HostFactory(fqdn=f"{name}.sb1.example.com", site=secure, secure_boot=secure_boot)
        factories.InterfaceFactory(host=host, name="eth0", mac=mac, ip=address, subnet=subnet)
    return world


def render(fmt: str) -> str:
    out = StringIO()
    call_command("dhcp_config", "--format", fmt, "--tftp-server", "10.0.0.5", stdout=out)
    return out.getvalue()


def test_isc_config_is_accepted_by_dhcpd(world, tmp_path):
    text = render("isc")
    golden("dhcpd.conf", text)
    config = tmp_path / "dhcpd.conf"
    config.write_text(text)
    result = subprocess.run(["dhcpd", "-t", "-4", "-cf", str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_dnsmasq_config_is_accepted_by_dnsmasq(world, tmp_path):
    text = render("dnsmasq")
    golden("dnsmasq.conf", text)
    config = tmp_path / "dnsmasq.conf"
    config.write_text(text)
    result = subprocess.run(["dnsmasq", "--test", f"--conf-file={config}"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_both_break_the_chainload_loop_with_the_ipxe_user_class(world):
    isc, dnsmasq = render("isc"), render("dnsmasq")
    assert 'option user-class = "iPXE"' in isc and 'filename "http://portal.example.com:8000/boot.ipxe"' in isc
    assert "dhcp-userclass=set:ipxe,iPXE" in dnsmasq
    assert "dhcp-boot=tag:ipxe,http://portal.example.com:8000/boot.ipxe" in dnsmasq
    assert "dhcp-host=52:54:00:00:00:01,10.0.0.11,build" in dnsmasq


def test_dynamic_ranges_leave_out_the_gateway_and_reserved_addresses(world):
    isc = render("isc")
    assert "range 10.5.0.2 10.5.0.99;" in isc and "range 10.5.0.110 10.5.0.254;" in isc


def test_secure_boot_machines_get_shim_by_their_own_setting_else_their_sites(world):
    isc, dnsmasq = render("isc"), render("dnsmasq")
    blocks = dict(re.findall(r"^((?:subnet|host) [^{]+) \{\n(.*?)^\}$", isc, re.M | re.S))
    assert 'filename "shimx64.efi"' in blocks["subnet 10.6.0.0 netmask 255.255.255.0"]  # the site's
    assert 'filename "shimx64.efi"' not in blocks["subnet 10.0.0.0 netmask 255.255.255.0"]
    assert 'filename "shimx64.efi"' in blocks["host idle-ams1-example-com-eth0"]  # its own, over its site's
    assert 'filename "snponly.efi"' in blocks["host old-sb1-example-com-eth0"]
    assert "filename" not in blocks["host new-sb1-example-com-eth0"]  # as its site
    assert "filename" not in blocks["host build-ams1-example-com-eth0"]
    for block in (blocks["subnet 10.6.0.0 netmask 255.255.255.0"], blocks["host idle-ams1-example-com-eth0"]):
        assert 'option user-class = "iPXE"' in block and "HTTPClient" not in block  # no HTTP boot under Secure Boot
    assert (
        'option vendor-class-identifier "HTTPClient";\n    filename "http://portal.example.com:8000/boot/snponly.efi"'
        in (blocks["subnet 10.0.0.0 netmask 255.255.255.0"])
    )
    assert "dhcp-host=52:54:00:00:00:02,set:sb,10.0.0.12,idle" in dnsmasq
    assert "dhcp-host=52:54:00:00:06:02,set:nosb,10.6.0.12,old" in dnsmasq
    assert "dhcp-host=52:54:00:00:06:01,10.6.0.11,new" in dnsmasq
    assert "tag-if=set:sb,tag:d2b3,tag:!nosb" in dnsmasq  # (10.6.0.0/24 is the third subnet)

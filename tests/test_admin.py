"""The admin: every page renders for a superuser, its forms refuse bad input, its actions work."""

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from hosts.models import Host
from provisioning.models import Build
from tests import factories


@pytest.fixture
def inventory(db):
    """One row of every model, so change pages have something to show."""
    boot_version = factories.ImageVersionFactory(image=factories.BootImageFactory())
    version = factories.ImageVersionFactory()
    menu = factories.PxeMenuFactory()
    factories.PxeMenuItemFactory(menu=menu)
    host = factories.HostFactory(image=version.image, image_version=version, boot_version=boot_version)
    factories.InterfaceFactory(host=host)
    factories.SubnetFactory(site=host.site)
    factories.BuildFactory(host=host)
    return host


def _models():
    return [model for model in admin.site._registry if model._meta.app_label in {"hosts", "images", "provisioning"}]


@pytest.mark.parametrize("model", _models(), ids=lambda model: model._meta.label)
def test_changelist_add_and_change_pages_render(admin_client, inventory, model):
    opts = model._meta
    changelist = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), follow=True)
    assert changelist.status_code == 200
    model_admin = admin.site._registry[model]
    if model_admin.has_add_permission(changelist.wsgi_request):
        assert admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 200
    row = model.objects.first()
    if row is not None:
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
        assert admin_client.get(change_url).status_code == 200


def test_host_changelist_shows_the_columns_that_matter(admin_client, inventory):
    interface = inventory.interfaces.get()
    page = admin_client.get(reverse("admin:hosts_host_changelist")).content.decode()
    for text in [inventory.fqdn, f"{inventory.image}:{inventory.image_version.version}", interface.mac, "New"]:
        assert text in page


@pytest.mark.parametrize("term", ["52:54:00:aa:bb:cc", "52-54-00-AA-BB-CC", "5254.00aa.bbcc", "525400aabbcc", "aa:bb"])
def test_host_search_finds_a_mac_in_any_spelling(admin_client, db, term):
    host = factories.HostFactory(fqdn="found.example.com")
    factories.InterfaceFactory(host=host, mac="52:54:00:aa:bb:cc")
    factories.InterfaceFactory(host=factories.HostFactory(fqdn="other.example.com"), mac="52:54:00:00:00:01")
    page = admin_client.get(reverse("admin:hosts_host_changelist"), {"q": term}).content.decode()
    assert "found.example.com" in page
    assert "other.example.com" not in page


@pytest.mark.parametrize("term", ["10.1.0.9", "SER123", "found"])
def test_host_search_by_ip_serial_and_name(admin_client, db, term):
    subnet = factories.SubnetFactory(network="10.1.0.0/24")
    host = factories.HostFactory(fqdn="found.example.com", serial="SER123", site=subnet.site)
    factories.InterfaceFactory(host=host, ip="10.1.0.9", subnet=subnet)
    factories.HostFactory(fqdn="other.example.com")
    page = admin_client.get(reverse("admin:hosts_host_changelist"), {"q": term}).content.decode()
    assert "found.example.com" in page
    assert "other.example.com" not in page


def _host_form(**overrides):
    data = {
        "fqdn": "new.example.com",
        "kopts": "",
        "volmgt": "",
        "labels": "",
        "serial": "",
        "asset_tag": "",
        "interfaces-TOTAL_FORMS": "1",
        "interfaces-INITIAL_FORMS": "0",
        "interfaces-MIN_NUM_FORMS": "0",
        "interfaces-MAX_NUM_FORMS": "1000",
        "interfaces-0-name": "eth0",
        "interfaces-0-mac": "AA-BB-CC-DD-EE-01",
        "interfaces-0-ip": "",
    }
    data.update(overrides)
    return data


def test_admin_creates_a_host_with_its_primary_interface(admin_client, db, monkeypatch):
    from hosts import services as host_services

    created = []
    create = host_services.host_create
    monkeypatch.setattr(host_services, "host_create", lambda **kwargs: created.append(kwargs) or create(**kwargs))
    response = admin_client.post(reverse("admin:hosts_host_add"), _host_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    interface = Host.objects.get(fqdn="new.example.com").interfaces.get()
    assert (interface.mac, interface.primary) == ("aa:bb:cc:dd:ee:01", True)
    assert [call["data"]["fqdn"] for call in created] == ["new.example.com"]  # the create service, not an update


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"interfaces-0-mac": "aa:bb:cc"}, "is not a MAC address"),
        ({"fqdn": "no_domain"}, "needs a domain"),
        ({"kopts": "quiet\nchain http://evil/"}, "not allowed in text"),
        ({"kopts": "a || b"}, "not allowed in text"),
        ({"interfaces-0-ip": "10.99.0.1"}, "No subnet holds"),
    ],
)
def test_admin_form_refuses_bad_input_with_a_message(admin_client, db, overrides, says):
    response = admin_client.post(reverse("admin:hosts_host_add"), _host_form(**overrides))
    assert response.status_code == 200
    assert says in response.content.decode()
    assert not Host.objects.exists()


def test_admin_refuses_a_duplicate_mac(admin_client, db):
    holder = factories.InterfaceFactory(mac="aa:bb:cc:dd:ee:01")
    response = admin_client.post(reverse("admin:hosts_host_add"), _host_form())
    assert (
        f"Another interface has this MAC (aa:bb:cc:dd:ee:01): eth0 of {holder.host.fqdn}." in response.content.decode()
    )


def test_admin_refuses_two_primaries(admin_client, db):
    form = _host_form(
        **{
            "interfaces-TOTAL_FORMS": "2",
            "interfaces-0-primary": "on",
            "interfaces-1-name": "eth1",
            "interfaces-1-mac": "aa:bb:cc:dd:ee:02",
            "interfaces-1-primary": "on",
        }
    )
    response = admin_client.post(reverse("admin:hosts_host_add"), form)
    assert "Only one interface can be primary" in response.content.decode()


def test_admin_refuses_a_bad_subnet_with_the_fix(admin_client, db):
    site = factories.SiteFactory()
    response = admin_client.post(
        reverse("admin:hosts_subnet_add"),
        {"network": "10.0.0.1/24", "site": site.pk, "dns_servers": "", "reserved": ""},
    )
    assert "did you mean 10.0.0.0/24?" in response.content.decode()


def test_enter_and_cancel_build_mode_actions(admin_client, db):
    hosts = [factories.InstallableHostFactory() for _ in range(2)]
    url = reverse("admin:hosts_host_changelist")
    selected = [str(host.pk) for host in hosts]
    response = admin_client.post(url, {"action": "enter_build", "_selected_action": selected}, follow=True)
    assert "2 host(s) in build mode" in response.content.decode()
    assert all(host.build for host in Host.objects.all())
    assert Build.objects.filter(state="pending").count() == 2
    assert all(len(build.token) >= 40 for build in Build.objects.all())

    admin_client.post(url, {"action": "cancel_build", "_selected_action": selected})
    assert not any(host.build for host in Host.objects.all())
    assert set(Build.objects.values_list("state", flat=True)) == {"cancelled"}
    assert not Build.objects.exclude(token=None).exists()


def test_build_mode_is_refused_per_host_with_the_reason(admin_client, db):
    good = factories.InstallableHostFactory()
    no_nic = factories.InstallableHostFactory(interface=None)
    no_image = factories.InstallableHostFactory(image=None)
    url = reverse("admin:hosts_host_changelist")
    selected = [str(host.pk) for host in (good, no_nic, no_image)]
    text = admin_client.post(url, {"action": "enter_build", "_selected_action": selected}, follow=True).content.decode()
    assert "1 host(s) in build mode" in text
    assert f"Build mode refused for {no_nic.fqdn}: the host has no network interface." in text
    assert (
        f"Build mode refused for {no_image.fqdn}: the host has no image (neither its own nor its site&#x27;s)." in text
    )
    assert list(Host.objects.filter(build=True)) == [good]
    assert Build.objects.get().host == good


def test_boot_defaults_list_goes_to_the_one_form(admin_client, db):
    response = admin_client.get(reverse("admin:provisioning_bootdefaults_changelist"))
    assert response.status_code == 302
    assert response["Location"].endswith("/provisioning/bootdefaults/1/change/")


def test_admin_moves_the_primary_flag_between_existing_interfaces(admin_client, db):
    host = factories.HostFactory()
    first = factories.InterfaceFactory(host=host, name="eth0", mac="aa:bb:cc:dd:ee:01")
    second = factories.InterfaceFactory(host=host, name="eth1", mac="aa:bb:cc:dd:ee:02", primary=False)
    form = _host_form(
        fqdn=host.fqdn,
        site=host.site.pk,
        **{
            "interfaces-TOTAL_FORMS": "2",
            "interfaces-INITIAL_FORMS": "2",
            "interfaces-0-id": first.pk,
            "interfaces-0-host": host.pk,
            "interfaces-0-mac": first.mac,
            "interfaces-1-id": second.pk,
            "interfaces-1-host": host.pk,
            "interfaces-1-name": "eth1",
            "interfaces-1-mac": second.mac,
            "interfaces-1-primary": "on",
        },
    )
    response = admin_client.post(reverse("admin:hosts_host_change", args=[host.pk]), form)
    assert response.status_code == 302
    assert host.interfaces.get(primary=True).name == "eth1"


def test_host_page_shows_the_build_timeline_and_the_list_a_progress_bar(admin_client, db):
    from provisioning.models import BuildEvent

    build = factories.BuildFactory(state="running")
    BuildEvent.objects.create(build=build, stage="disk", progress=10, message="partitioning /dev/vda")
    BuildEvent.objects.create(build=build, stage="image", progress=42, message="layer 2 of 3")
    page = admin_client.get(reverse("admin:hosts_host_change", args=[build.host.pk])).content.decode()
    assert "partitioning /dev/vda" in page and "layer 2 of 3" in page
    listing = admin_client.get(reverse("admin:hosts_host_changelist")).content.decode()
    assert '<progress value="42" max="100"' in listing


def test_config_preview_from_the_host_page(admin_client, db):
    site = factories.SiteFactory(registry_password="hunter2")
    host = factories.HostFactory(site=site)
    factories.InterfaceFactory(host=host)
    response = admin_client.get(reverse("admin:hosts_host_config_preview", args=[host.pk, "env"]))
    assert response.status_code == 200
    assert f"D2B_FQDN='{host.fqdn}'" in response.content.decode()
    assert "hunter2" not in response.content.decode()


def test_discovered_hosts_are_registered_as_hosts(admin_client, db):
    from django.utils import timezone

    from provisioning.models import DiscoveredHost

    subnet = factories.SubnetFactory(network="10.7.0.0/24", site=factories.SiteFactory(domain="lab.example.com"))
    found = DiscoveredHost.objects.create(mac="52:54:00:12:34:56", ip="10.7.0.9", serial="S1", last_seen=timezone.now())
    admin_client.post(
        reverse("admin:provisioning_discoveredhost_changelist"),
        {"action": "register", "_selected_action": [found.pk]},
    )
    host = Host.objects.get(fqdn="525400123456.lab.example.com")
    interface = host.interfaces.get()
    assert (host.site, host.serial, interface.mac, interface.ip, interface.subnet) == (
        subnet.site, "S1", "52:54:00:12:34:56", "10.7.0.9", subnet,
    )  # fmt: skip
    assert not DiscoveredHost.objects.exists()


def test_registering_a_discovered_machine_needs_the_permission_to_add_hosts(client, db):
    from django.contrib.auth.models import Permission, User
    from django.utils import timezone

    from provisioning.models import DiscoveredHost

    found = DiscoveredHost.objects.create(mac="52:54:00:12:34:57", last_seen=timezone.now())
    staff = User.objects.create_user(username="cleaner", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=["view_discoveredhost", "delete_discoveredhost"]))
    client.force_login(staff)
    url = reverse("admin:provisioning_discoveredhost_changelist")
    offered = [name for name, _label in client.get(url).context["action_form"].fields["action"].choices]
    assert "register" not in offered
    client.post(url, {"action": "register", "_selected_action": [found.pk]})
    assert not Host.objects.exists() and DiscoveredHost.objects.exists()
    staff.user_permissions.add(Permission.objects.get(codename="add_host"))
    staff = User.objects.get(pk=staff.pk)
    client.force_login(staff)
    client.post(url, {"action": "register", "_selected_action": [found.pk]})
    assert Host.objects.filter(fqdn__startswith="525400123457").exists()


def test_deleting_an_open_build_in_the_admin_takes_its_host_out_of_build_mode(admin_client, db):
    from provisioning.builds.services import host_enter_build

    host = factories.InstallableHostFactory()
    build = host_enter_build(host=host)
    url = reverse("admin:provisioning_build_changelist")
    admin_client.post(url, {"action": "delete_selected", "_selected_action": [build.pk], "post": "yes"})
    host.refresh_from_db()
    assert not Build.objects.exists() and not host.build
    build = host_enter_build(host=host)
    admin_client.post(reverse("admin:provisioning_build_delete", args=[build.pk]), {"post": "yes"})
    host.refresh_from_db()
    assert not Build.objects.exists() and not host.build


def test_builds_say_what_happened_version_progress_reason_who_and_how_long(admin_client, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com"
    from django.test import Client

    running_host = factories.InstallableHostFactory()
    admin_client.post(reverse("admin:hosts_host_build", args=[running_host.pk, "enter"]))
    build = Build.objects.get(host=running_host)
    assert build.started_by == "admin" and build.image_version is None
    installer = Client()
    assert installer.get(f"/config/{build.token}").status_code == 200  # the first fetch pins the version
    installer.post(f"/config/{build.token}/events", {"stage": "image", "progress": 30, "message": "layer 1 of 3"},
                   "application/json")  # fmt: skip
    build.refresh_from_db()
    version = running_host.image.versions.get()
    assert build.image_version == version

    failed_host = factories.InstallableHostFactory()
    now = timezone.now()
    services_build = factories.BuildFactory(host=failed_host, state="running", token="t" * 40, started=now,
                                            last_activity=now)  # fmt: skip
    Host.objects.filter(pk=failed_host.pk).update(build=True)
    installer.post(f"/config/{services_build.token}/events", {"stage": "failed", "message": "disk too small"},
                   "application/json")  # fmt: skip

    builds = admin_client.get(reverse("admin:provisioning_build_changelist")).content.decode()
    assert str(version) in builds and 'value="30"' in builds and "layer 1 of 3" in builds
    assert "disk too small" in builds and "so far" in builds and ">admin<" in builds
    hosts = admin_client.get(reverse("admin:hosts_host_changelist")).content.decode()
    assert "Failed: <span" in hosts and "disk too small" in hosts
    page = admin_client.get(reverse("admin:provisioning_build_change", args=[services_build.pk])).content.decode()
    assert "disk too small" in page and "None" not in page.split('id="build_form"')[1].split("</form>")[0]


def test_the_host_page_enters_and_cancels_build_mode_with_the_list_actions_checks(admin_client):
    host = factories.InstallableHostFactory()
    page = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk])).content.decode()
    assert "Enter build mode</button>" in page
    admin_client.post(reverse("admin:hosts_host_build", args=[host.pk, "enter"]))
    host.refresh_from_db()
    assert host.build
    page = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk])).content.decode()
    assert "Cancel build</button>" in page
    admin_client.post(reverse("admin:hosts_host_build", args=[host.pk, "cancel"]))
    host.refresh_from_db()
    assert not host.build

    bare = factories.HostFactory()
    answer = admin_client.post(reverse("admin:hosts_host_build", args=[bare.pk, "enter"]), follow=True)
    assert "Build mode refused for" in answer.content.decode()
    bare.refresh_from_db()
    assert not bare.build
    assert admin_client.post(reverse("admin:hosts_host_build", args=[host.pk, "explode"])).status_code == 404
    assert admin_client.get(reverse("admin:hosts_host_build", args=[host.pk, "enter"])).status_code == 403


@pytest.mark.parametrize(
    ("kind", "shown", "hidden"),
    [("boot", "kernel_url", "digest"), ("docker", "digest", "kernel_url"), ("file", "file", "kernel_url")],
)
def test_an_image_page_shows_the_version_fields_of_its_type_only(admin_client, kind, shown, hidden):
    image = factories.ImageFactory(type=kind)
    factories.ImageVersionFactory(image=image)
    page = admin_client.get(reverse("admin:images_image_change", args=[image.pk])).content.decode()
    assert f'name="versions-0-{shown}"' in page and f'name="versions-0-{hidden}"' not in page


@pytest.mark.parametrize(("field", "make", "expected"), [
    ("site", lambda: [factories.SiteFactory(name=name) for name in ["b-site", "a-site"]], ["a-site", "b-site"]),
    ("image", lambda: [factories.ImageFactory(name=name) for name in ["zeta", "alpha"]], ["alpha", "zeta"]),
])  # fmt: skip
def test_the_host_forms_pickers_list_counted_rows_in_order(admin_client, db, field, make, expected):
    """Sites and images are read with counts (GROUP BY drops the model's ordering): the admin orders them itself."""
    import warnings

    from django.core.paginator import UnorderedObjectListWarning

    make()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnorderedObjectListWarning)
        response = admin_client.get(
            "/admin/autocomplete/", {"app_label": "hosts", "model_name": "host", "field_name": field}
        )
    assert [result["text"] for result in response.json()["results"]] == expected

"""The etcd mirror against a real etcd (v3 and v2): projections, exact syncs, reconcile, import and export."""

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dock2box.models import OutboxEntry
from hosts import services as host_services
from hosts.models import Host, Interface, Site, Subnet
from images import services as image_services
from images.models import Image
from provisioning.builds.services import host_enter_build
from provisioning.catalogue.services import boot_defaults_update
from provisioning.mirror import sync
from provisioning.mirror.projection import KINDS
from tests import factories
from tests.boot_world import make_world
from tests.test_boot import golden

pytestmark = pytest.mark.django_db


def original_example():
    """The original Dock2Box's example host document, test1.example.com, as the database holds it."""
    site = host_services.site_create(data={"name": "emea2", "domain": "example.com"})
    image = image_services.image_create(data={"name": "centos-7.1-x86_64", "type": "file"})
    image_services.image_version_create(
        data={"image": image, "version": "20160201-120000", "timestamp": datetime(2016, 2, 1, 12, tzinfo=UTC)}
    )
    host = host_services.host_create(
        data={"fqdn": "test1.example.com", "site": site, "image": image, "gpt": False, "kexec": False, "kopts": ""},
        interfaces=[
            {"name": "eth0", "mac": "00:50:56:3d:db:d4", "ip": "10.192.61.96", "netmask": "255.255.254.0",
             "gateway": "10.192.61.254"},
        ],
    )  # fmt: skip
    return host


def test_the_original_example_host_projects_to_the_original_layout(settings):
    settings.DOCK2BOX_ETCD_URL = ""
    original_example()
    documents = sync.desired_documents({"host/test1.example.com", "hwaddr/00:50:56:3d:db:d4"})
    nic = {"gw": "10.192.61.254", "hwaddr": "00:50:56:3d:db:d4", "ip": "10.192.61.96", "netmask": "255.255.254.0"}
    expected = {
        "build": "false", "debug": "false", "gpt": "false", "kexec": "false", "kopts": "",
        "image": "centos-7.1-x86_64", "version": "latest", "site": "emea2",
        **{f"interface/{name}/{field}": value for name in ("default", "eth0") for field, value in nic.items()},
    }  # fmt: skip
    assert documents["host/test1.example.com"] == {f"/host/test1.example.com/{k}": v for k, v in expected.items()}
    assert documents["hwaddr/00:50:56:3d:db:d4"] == {
        "/hwaddr/00:50:56:3d:db:d4/hostname": "test1.example.com",
        "/hwaddr/00:50:56:3d:db:d4/interface": "eth0",
    }


def test_the_whole_tree_projects_as_the_golden_export(settings):
    settings.DOCK2BOX_ETCD_URL = ""
    make_world()
    golden("etcd-export.json", json.dumps(sync.export_tree(), indent=2, sort_keys=True) + "\n")


def test_a_prefix_moves_every_key(settings):
    settings.DOCK2BOX_ETCD_URL, settings.DOCK2BOX_ETCD_PREFIX = "", "/dock2box"
    original_example()
    keys = [key for document in sync.desired_documents(None).values() for key in document]
    assert keys and all(key.startswith("/dock2box/") for key in keys)


def test_no_outbox_rows_while_the_mirror_is_off(settings):
    settings.DOCK2BOX_ETCD_URL = ""
    original_example()
    assert not OutboxEntry.objects.exists()


# Against a real etcd ------------------------------------------------------------------------------------------------


def stored(etcd_store) -> dict[str, str]:
    return etcd_store.read([f"/{kind}/" for kind in KINDS])


def expected() -> dict[str, str]:
    return {key: value for document in sync.desired_documents(None).values() for key, value in document.items()}


@pytest.fixture
def store(etcd):
    return sync.mirror_stores()[0]


def drain():
    sync.outbox_drain(wait=True)
    assert not OutboxEntry.objects.exists()


def test_the_tree_etcd_holds_validates_against_the_originals_root_schema(store, settings):
    """What `etcdtool validate` checks on a live tree: every document against the original's schemas (draft-04)."""
    from jsonschema import Draft4Validator

    from provisioning.compat.schemas import REGISTRY, SCHEMAS

    make_world()
    original_example()
    drain()
    tree = sync.read_tree(store, settings.DOCK2BOX_ETCD_PREFIX)
    assert tree["host"]["test1.example.com"]["interface"]["default"]["hwaddr"] == "00:50:56:3d:db:d4"
    validator = Draft4Validator(SCHEMAS["root"], registry=REGISTRY, format_checker=Draft4Validator.FORMAT_CHECKER)
    assert [error.message for error in validator.iter_errors(tree)] == []


def test_changes_reach_etcd_exactly_and_leave_nothing_stale(store):
    host = original_example()
    drain()
    assert stored(store) == expected()
    assert stored(store)["/host/test1.example.com/interface/default/hwaddr"] == "00:50:56:3d:db:d4"

    host = host_services.host_update(host=host, data={"fqdn": "renamed.example.com", "kexec": None})
    drain()
    keys = stored(store)
    assert keys == expected()
    assert not any(key.startswith("/host/test1.example.com/") for key in keys)
    assert "/host/renamed.example.com/kexec" not in keys
    assert keys["/hwaddr/00:50:56:3d:db:d4/hostname"] == "renamed.example.com"

    eth0 = host.interfaces.get()
    host_services.interface_update(interface=eth0, data={"mac": "00:50:56:00:00:01"})
    host_services.interface_create(data={"host": host, "name": "eth1", "mac": "00:50:56:00:00:02", "dhcp": True})
    drain()
    keys = stored(store)
    assert keys == expected()
    assert not any(key.startswith("/hwaddr/00:50:56:3d:db:d4/") for key in keys)
    assert keys["/hwaddr/00:50:56:00:00:02/interface"] == "eth1"

    host_services.interface_delete(interface=host.interfaces.get(name="eth0"))
    drain()
    keys = stored(store)
    assert keys == expected()
    assert keys["/host/renamed.example.com/interface/default/hwaddr"] == "00:50:56:00:00:02"
    assert not any("/interface/eth0/" in key for key in keys)

    host_services.host_delete(host=Host.objects.get())
    drain()
    assert not any(key.startswith(("/host/", "/hwaddr/")) for key in stored(store))


def test_renames_and_build_mode_reach_the_documents_that_show_them(store):
    host = original_example()
    drain()
    image_services.image_update(image=Image.objects.get(), data={"name": "centos-7.2-x86_64"})
    site = host_services.site_update(site=Site.objects.get(), data={"name": "emea3"})
    host_services.subnet_create(data={"network": "10.192.60.0/23", "site": site, "gateway": "10.192.61.254"})
    host_services.site_update(site=site, data={"file_uri": "http://files.example.com"})  # the image's tarball
    boot = image_services.image_create(data={"name": "d2b-boot", "type": "boot"})
    boot_defaults_update(data={"boot_version": image_services.image_version_create(
        data={"image": boot, "version": "1", "timestamp": datetime(2016, 1, 1, tzinfo=UTC)}
    )})  # fmt: skip
    host_enter_build(host=host)
    drain()
    keys = stored(store)
    assert keys == expected()
    assert keys["/host/test1.example.com/image"] == "centos-7.2-x86_64"
    assert keys["/host/test1.example.com/site"] == "emea3"
    assert keys["/host/test1.example.com/build"] == "true"
    assert keys["/subnets/10.192.60.0-23/site"] == "emea3"
    assert keys["/sites/emea3/file_server"] == keys["/sites/emea3/file_uri"]
    assert not any(key.startswith(("/image/centos-7.1-x86_64/", "/sites/emea2/")) for key in keys)


def test_reconcile_repairs_hand_edits_and_removes_strays(store):
    original_example()
    drain()
    from provisioning.mirror.store import DocumentChange

    tampered = {"/host/test1.example.com/build": "true", "/host/ghost.example.com/build": "false",
                "/image/centos-7.1-x86_64/junk": "x"}  # fmt: skip
    store.write([DocumentChange("/", {}, tampered)])
    store.write([DocumentChange("/sites/emea2/domain/", {"/sites/emea2/domain": "example.com"}, {})])
    assert stored(store) != expected()
    out = StringIO()
    call_command("etcd_sync", "--full", "--dry-run", stdout=out)
    assert "- /host/ghost.example.com/build" in out.getvalue()
    assert "~ /host/test1.example.com/build = 'false' (was 'true')" in out.getvalue()
    assert "+ /sites/emea2/domain = 'example.com'" in out.getvalue()
    assert stored(store) != expected()
    call_command("etcd_sync", "--full", stdout=StringIO())
    assert stored(store) == expected()


def test_etcd_sync_delivers_the_outbox(store):
    original_example()
    assert OutboxEntry.objects.exists()
    out = StringIO()
    call_command("etcd_sync", stdout=out)
    assert not OutboxEntry.objects.exists()
    assert stored(store) == expected()
    assert "changed" in out.getvalue()


def test_an_unreachable_etcd_keeps_the_outbox_and_says_why(settings):
    from provisioning.mirror.store import EtcdUnavailable
    from provisioning.models import MirrorState
    from tests.services import free_port

    settings.DOCK2BOX_ETCD_URL, settings.DOCK2BOX_ETCD_TIMEOUT = f"http://127.0.0.1:{free_port()}", 0.5
    original_example()
    waiting = OutboxEntry.objects.count()
    with pytest.raises(EtcdUnavailable):
        sync.outbox_drain(wait=True)
    assert OutboxEntry.objects.count() == waiting
    assert "etcd" in MirrorState.objects.get().last_error


# Import and export --------------------------------------------------------------------------------------------------


def _wipe_database():
    Interface.objects.all().delete()
    Host.objects.all().delete()
    Subnet.objects.all().delete()
    Site.objects.all().delete()
    from provisioning.models import BootDefaults, PxeMenu

    BootDefaults.objects.all().delete()
    PxeMenu.objects.all().delete()
    Image.objects.update(boot_version=None)
    Image.objects.all().delete()


def test_export_wipe_import_export_gives_the_same_file(settings, tmp_path):
    settings.DOCK2BOX_ETCD_URL = ""
    world = make_world()
    host_services.subnet_create(data={"network": "2001:db8::/64", "site": world.site, "vlan": 7})
    first = tmp_path / "first.json"
    call_command("etcd_export", "--file", str(first), stderr=StringIO())
    _wipe_database()
    out = StringIO()
    call_command("etcd_import", "--file", str(first), stdout=out)
    assert "records imported" in out.getvalue()
    second = tmp_path / "second.json"
    call_command("etcd_export", "--file", str(second), stderr=StringIO())
    assert second.read_text() == first.read_text()


def test_a_live_original_tree_imports_from_etcd_v2(etcd_server, settings):
    """The original's example data, as its etcdrest wrote it into etcd v2, with its inconsistencies."""
    import requests

    etcd_server.wipe()
    settings.DOCK2BOX_ETCD_URL = ""
    keys = {
        "/sites/emea2/domain": "example.com",
        "/sites/emea2/file_server": "http://host-images:8080",
        "/sites/emea2/docker_registry": "docker-registry:8080",
        "/sites/emea2/dns_servers/0": "10.0.0.2",
        "/sites/emea2/dns_servers/1": "10.0.0.3",
        "/image/centos-7.1-x86_64/type": "file",
        "/image/centos-7.1-x86_64/debug": "False",
        "/image/centos-7.1-x86_64/versions/20160201-120000/timestamp": "20160201-120000",
        "/image/d2b-boot/type": "boot",
        "/image/d2b-boot/versions/1/timestamp": "20160101-000000",
        "/default/bootstrap_image": "d2b-boot",
        "/host/test1.example.com/build": "True",
        "/host/test1.example.com/debug": "false",
        "/host/test1.example.com/gpt": "false",
        "/host/test1.example.com/kexec": "false",
        "/host/test1.example.com/kopts": "",
        "/host/test1.example.com/image": "centos-7.1-x86_64",
        "/host/test1.example.com/version": "latest",
        "/host/test1.example.com/site": "emea2",
        "/hwaddr/00:50:56:3d:db:d4/hostname": "elsewhere.example.com",
    }
    for nic in ("default", "eth0"):
        keys |= {f"/host/test1.example.com/interface/{nic}/hwaddr": "00:50:56:3D:DB:D4",
                 f"/host/test1.example.com/interface/{nic}/ip": "10.192.61.96",
                 f"/host/test1.example.com/interface/{nic}/netmask": "255.255.254.0",
                 f"/host/test1.example.com/interface/{nic}/gw": "10.192.61.254"}  # fmt: skip
    for key, value in keys.items():
        requests.put(f"{etcd_server.url}/v2/keys{key}", data={"value": value}, timeout=5).raise_for_status()
    out = StringIO()
    call_command("etcd_import", "--from-etcd", etcd_server.url, "--api", "v2", stdout=out)
    host = Host.objects.get(fqdn="test1.example.com")
    interface = host.interfaces.get()
    assert (interface.name, interface.mac, interface.primary, str(interface.ip)) == (
        "eth0", "00:50:56:3d:db:d4", True, "10.192.61.96",
    )  # fmt: skip
    assert host.build is True and host.image.name == "centos-7.1-x86_64" and host.image_version is None
    site = Site.objects.get()
    assert (site.file_uri, site.registry, site.dns_servers) == (
        "http://host-images:8080", "docker-registry:8080", "10.0.0.2,10.0.0.3",
    )  # fmt: skip
    assert "/hwaddr: 1 entries ignored" in out.getvalue()
    etcd_server.wipe()


def test_a_malformed_import_is_rejected_whole_and_changes_nothing(settings, tmp_path):
    settings.DOCK2BOX_ETCD_URL = ""
    factories.SiteFactory(name="keep1")
    bad = {
        "sites": {"emea2": {"domain": "example.com"}, "Bad Site": {"domain": "x"}},
        "image": {"img": {"type": "rpm"}},
        "host": {
            "good.example.com": {"site": "emea2", "debug": "false"},
            "bad.example.com": {"site": "nowhere", "debug": "false"},
            "worse.example.com": {"debug": "maybe", "interface": {"eth0": {"hwaddr": "zz"}}},
        },
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("etcd_import", "--file", str(path), stdout=StringIO(), stderr=err)
    messages = err.getvalue()
    assert "/sites/Bad Site/name" in messages
    assert "/image/img/type: 'rpm' is not docker, file or boot" in messages
    assert "/host/bad.example.com/site: no site 'nowhere'" in messages
    assert "/host/worse.example.com/debug: 'maybe' is not true or false" in messages
    assert list(Site.objects.values_list("name", flat=True)) == ["keep1"]
    assert not Host.objects.exists()
    (tmp_path / "notjson.json").write_text("{nope")
    with pytest.raises(CommandError, match=r"notjson\.json"):
        call_command("etcd_import", "--file", str(tmp_path / "notjson.json"))


def test_both_apis_get_the_same_tree(etcd_server, settings):
    from provisioning.mirror.store import V2Store, V3Store

    etcd_server.wipe()
    settings.DOCK2BOX_ETCD_URL, settings.DOCK2BOX_ETCD_API = etcd_server.url, "both"
    original_example()
    drain()
    assert stored(V3Store(etcd_server.url, 5)) == stored(V2Store(etcd_server.url, 5)) == expected()
    etcd_server.wipe()


def test_mirror_state_in_the_api_and_the_admin(settings, user, token_client, admin_client):
    from django.urls import reverse

    from tests.conftest import grant

    settings.DOCK2BOX_ETCD_URL = "http://127.0.0.1:9"
    original_example()
    grant(user, "provisioning.view_mirrorstate")
    status = token_client.get(reverse("mirror-status")).json()
    assert status["enabled"] is True
    assert status["backlog"] == OutboxEntry.objects.count() > 0
    assert status["lag_seconds"] >= 0
    page = admin_client.get(reverse("admin:provisioning_mirrorstate_changelist")).content.decode()
    assert "Outbox backlog" in page
    assert f'<td class="field-backlog">{status["backlog"]}</td>' in page

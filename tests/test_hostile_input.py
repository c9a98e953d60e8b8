"""Input that used to make a 500: now a clear 4xx (or, to a booting host, a valid script), with nothing half-stored."""

import ipaddress
import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from hosts.models import Subnet
from hosts.selectors import subnet_free_addresses
from images import services as image_services
from images.models import Image
from provisioning.models import BootTemplate, BuildEvent, DiscoveredHost
from tests import factories
from tests.boot_world import BUILD_MAC, make_world
from tests.services import ROOT, free_port, manage, stop, wait_until

pytestmark = pytest.mark.django_db
NESTED = "[" * 5000 + "]" * 5000


@pytest.fixture
def world(settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com"
    return make_world()


def token(client) -> str:
    text = client.get(f"/ipxe?mac={BUILD_MAC}").content.decode()
    return text.split("/config/", 1)[1].split()[0]


def test_deeply_nested_json_is_a_400_everywhere(client, world, admin_user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    for url in ["/api/v2/hosts/", "/api/v2/sites/"]:
        response = api.post(url, NESTED, content_type="application/json")
        assert response.status_code == 400 and "nested deeper" in response.json()["detail"], url
    shallow_but_deep = json.dumps({"fqdn": "a.example.com", "labels": json.loads("[" * 40 + "]" * 40)})
    assert api.post("/api/v2/hosts/", shallow_but_deep, content_type="application/json").status_code == 400
    api.credentials(HTTP_AUTHORIZATION="Token x")
    response = client.put("/api/v1/hosts/a.example.com", NESTED, content_type="application/json")
    assert response.status_code in (400, 401)
    events = client.post(f"/config/{token(client)}/events", NESTED, content_type="application/json")
    assert events.status_code == 400 and "nested deeper" in events.json()["detail"]
    assert not BuildEvent.objects.exists()


def test_v1_delete_of_a_version_in_use_is_a_400_and_keeps_it(client, world, admin_user):
    from rest_framework.authtoken.models import Token

    version = world.debian.versions.get(version="a")
    world.build_host.image_version = version
    world.build_host.save()
    key = Token.objects.create(user=admin_user).key
    response = client.delete("/api/v1/images/debian-12/versions/a", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 400, response.content
    assert "still in use by build.ams1.example.com" in response.json()[0]
    assert world.debian.versions.filter(version="a").exists()


def test_in_use_means_in_use_for_the_boot_defaults_version_and_an_images_type(client, world, admin_user):
    """The boot environment the defaults boot cannot be deleted from under them, and an image hosts install cannot
    change its type: 409 in the API, a form error in the admin, and nothing changes."""
    from rest_framework.test import APIClient

    from provisioning.models import BootDefaults

    api = APIClient()
    api.force_authenticate(admin_user)
    boot = BootDefaults.objects.get().boot_version
    response = api.delete(f"/api/v2/image-versions/{boot.pk}/")
    assert response.status_code == 409 and "boot" in response.json()["detail"].lower(), response.content
    assert BootDefaults.objects.get().boot_version == boot
    response = api.patch(f"/api/v2/images/{world.debian.pk}/", {"type": "file"}, format="json")
    assert response.status_code == 409 and world.build_host.fqdn in response.json()["detail"], response.content
    assert Image.objects.get(pk=world.debian.pk).type == "docker"
    client.force_login(admin_user)
    page = client.get(f"/admin/images/image/{world.debian.pk}/change/")
    form = {**page.context["adminform"].form.initial, "type": "file"}
    data = {name: ("" if value is None else value) for name, value in form.items() if not isinstance(value, list)}
    data |= {"versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}
    answer = client.post(f"/admin/images/image/{world.debian.pk}/change/", data)
    assert answer.status_code == 200 and "the type cannot change" in answer.content.decode()
    assert Image.objects.get(pk=world.debian.pk).type == "docker"
    unused = Image.objects.create(name="unused", type="docker")
    assert api.patch(f"/api/v2/images/{unused.pk}/", {"type": "file"}, format="json").status_code == 200


def test_a_template_that_cannot_render_is_a_422_not_a_500(client, world, django_capture_on_commit_callbacks):
    from dock2box.changes import record_change

    with django_capture_on_commit_callbacks(execute=True):
        BootTemplate.objects.create(name="old", kind="kickstart", content='{% include "/etc/passwd" %}')  # unchecked
        record_change(everything=True)
    response = client.get(f"/config/{token(client)}?format=kickstart")
    assert response.status_code == 422 and "does not render" in response.content.decode()


@pytest.fixture
def stored_kernel(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    image = Image.objects.create(name="bootenv", type="boot")
    image_services.image_version_create(data={
        "image": image, "version": "1", "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "kernel": ContentFile(b"K" * 1000, name="vmlinuz"), "initrd": ContentFile(b"I" * 10, name="initrd"),
    })  # fmt: skip
    return "/files/boot/bootenv/1/kernel"


@pytest.mark.parametrize(
    "header", ["bytes=0-" + "9" * 5000, "bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 30, "bytes=99999999999999-"]
)
def test_a_range_with_a_huge_number_is_not_a_500(client, stored_kernel, header):
    response = client.get(stored_kernel, HTTP_RANGE=header)
    assert response.status_code in (200, 206, 416)
    if response.status_code == 200:
        assert b"".join(response.streaming_content) == b"K" * 1000


def test_nul_characters_are_a_400_in_the_apis_and_replaced_in_event_messages(client, world, admin_user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    key = Token.objects.create(user=admin_user).key
    document = {"type": "file", "main_script": "echo a\x00b"}
    response = client.put(
        "/api/v1/images/nul", json.dumps(document), content_type="application/json", HTTP_AUTHORIZATION=f"Token {key}"
    )
    assert response.status_code == 400 and "NUL" in response.json()[0]
    assert not Image.objects.filter(name="nul").exists()
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.patch(f"/api/v2/images/{world.debian.pk}/", {"main_script": "a\x00b"}, format="json")
    assert response.status_code == 400 and "main_script" in response.json()

    posted = client.post(f"/config/{token(client)}/events", {"stage": "image", "message": "tar: \x00 odd"},
                         "application/json")  # fmt: skip
    assert posted.status_code == 201
    assert BuildEvent.objects.get().message == "tar: \N{REPLACEMENT CHARACTER} odd"


@pytest.mark.parametrize("zone", ["eth0", "x\nshell", "x\r\nchain http://evil/x", "\u2028shell"])
def test_an_ipv6_zone_in_the_request_never_reaches_the_script(client, world, zone):
    """The address a host says it booted with is echoed in its menu: one with a zone id is no address at all."""
    from dock2box.http import ip_or_empty

    assert ip_or_empty(f"fe80::1%{zone}") == ""
    for mac in ("52:54:00:99:99:99", BUILD_MAC):
        text = client.get("/ipxe", {"mac": mac, "ip": f"fe80::1%{zone}"}).content.decode()
        assert "fe80::1" not in text and "evil" not in text
        assert text == client.get("/ipxe", {"mac": mac}).content.decode()  # as if it had named no address


def test_discovery_details_longer_than_their_columns_still_get_the_menu(client, world):
    text = client.get(f"/ipxe?mac=52:54:00:00:0d:01&uuid={'a' * 99}&buildarch={'x' * 90}&serial=S1").content.decode()
    assert "item --gap -- mac: 52:54:00:00:0d:01" in text and "internal error" not in text
    discovered = DiscoveredHost.objects.get(mac="52:54:00:00:0d:01")
    assert (discovered.uuid, discovered.buildarch, discovered.serial) == ("", "", "S1")


def test_next_free_ip_steps_over_a_huge_reserved_range(admin_user):
    from rest_framework.test import APIClient

    subnet = factories.SubnetFactory(network="2001:db8::/32", reserved="2001:db8::1-2001:db8::ffff:ffff:ffff")
    api = APIClient()
    api.force_authenticate(admin_user)
    started = time.monotonic()
    response = api.get(reverse("subnet-next-free-ip", args=[subnet.pk]))
    assert response.json() == {"ip": "2001:db8:0:0:1::"}
    assert time.monotonic() - started < 5  # it used to walk the range (31 s, then a worker timeout)


@pytest.mark.parametrize(
    ("network", "reserved", "used", "gateway"),
    [
        ("10.0.0.0/28", "10.0.0.2-10.0.0.4, 10.0.0.9", ["10.0.0.1", "10.0.0.5"], "10.0.0.14"),
        ("10.0.0.0/28", "10.0.0.1-10.0.0.14", [], None),
        ("10.0.0.0/31", "", ["10.0.0.0"], None),
        ("10.0.0.7/32", "", [], None),
        ("2001:db8::/124", "2001:db8::3-2001:db8::5", ["2001:db8::1"], "2001:db8::f"),
        ("2001:db8::/127", "", [], None),
        ("2001:db8::1/128", "", [], None),
    ],
)
def test_free_addresses_are_the_hosts_not_used_reserved_or_the_gateway(network, reserved, used, gateway):
    subnet = factories.SubnetFactory(network=network, reserved=reserved, gateway=gateway)
    for number, ip in enumerate(used):
        factories.InterfaceFactory(host=factories.HostFactory(), ip=ip, subnet=subnet, name=f"eth{number}")
    subnet = Subnet.objects.get(pk=subnet.pk)
    taken = {ipaddress.ip_address(ip) for ip in [*used, *([gateway] if gateway else [])]}
    expected = [
        str(address)
        for address in ipaddress.ip_network(network).hosts()
        if address not in taken and not any(start <= address <= end for start, end in subnet.reserved_ranges())
    ]
    assert list(subnet_free_addresses(subnet=subnet)) == expected


@pytest.mark.slow
def test_parallel_event_posts_on_the_embedded_sqlite_default(tmp_path):
    """The embedded default (SQLite) under several gunicorn workers and threads: no "database is locked"."""
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'd2b.sqlite3'}", "DOCK2BOX_VAR_DIR": str(tmp_path),
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DOCK2BOX_BIND": f"127.0.0.1:{port}",
           "DOCK2BOX_WEB_WORKERS": "3", "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/12"}  # fmt: skip
    for command in (["migrate", "-v0"], ["seed_demo"]):
        assert manage(*command, env=env, stdout=subprocess.DEVNULL).wait() == 0
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "dock2box.wsgi", "--config", "deploy/gunicorn.conf.py",
         "--threads", "4"],
        cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: urllib.request.urlopen(f"{url}/healthz", timeout=1).status == 200, what="gunicorn")
        menu = urllib.request.urlopen(f"{url}/ipxe?mac=52:54:00:d2:b0:01", timeout=5).read().decode()
        events = f"{url}/config/{menu.split('/config/', 1)[1].split()[0]}/events"

        def post(number: int) -> int:
            body = json.dumps({"stage": "image", "progress": number % 100, "message": "x" * 2000}).encode()
            request = urllib.request.Request(events, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status

        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(post, range(120))) == [201] * 120
        config = urllib.request.urlopen(events.removesuffix("/events") + "?format=env", timeout=5).read().decode()
        assert "D2B_IF0_MAC='52:54:00:d2:b0:01'" in config  # the build and the interfaces read on SQLite
    finally:
        stop(server)
    assert "database is locked" not in (tmp_path / "gunicorn.log").read_text()
    seen = subprocess.run(  # the last-seen time written on the boot path reads back through the ORM
        [sys.executable, "manage.py", "shell", "-c",
         "from hosts.models import Interface; print(Interface.objects.get(mac='52:54:00:d2:b0:01').host.last_seen)"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert datetime.fromisoformat(seen.strip().splitlines()[-1]).tzinfo is not None


def test_a_flood_of_unknown_macs_does_not_grow_the_table_without_end(client, world, settings):
    settings.DOCK2BOX_DISCOVERED_MAX = 50
    for number in range(400):
        client.get(f"/ipxe?mac=02:00:00:00:{number // 256:02x}:{number % 256:02x}")
    assert DiscoveredHost.objects.count() <= 50 + 100
    assert DiscoveredHost.objects.filter(mac="02:00:00:00:01:8f").exists()  # the newest stays


def test_events_beyond_the_limit_are_refused_but_done_is_not(client, world, settings):
    settings.DOCK2BOX_BUILD_EVENTS_MAX = 5
    build_token = token(client)
    statuses = [
        client.post(f"/config/{build_token}/events", {"stage": "image", "progress": n}, "application/json").status_code
        for n in range(7)
    ]
    assert statuses == [201] * 5 + [429] * 2
    assert client.post(f"/config/{build_token}/events", {"stage": "done"}, "application/json").status_code == 201
    assert BuildEvent.objects.count() == 6


def test_build_events_are_paged_and_the_list_is_small(client, world, admin_user):
    from rest_framework.test import APIClient

    build_token = token(client)
    for number in range(60):
        client.post(f"/config/{build_token}/events", {"stage": "image", "progress": number, "message": "m" * 16000},
                    "application/json")  # fmt: skip
    api = APIClient()
    api.force_authenticate(admin_user)
    listing = api.get("/api/v2/builds/")
    assert len(listing.content) < 20000
    shown = listing.json()["results"][0]
    assert (shown["event_count"], shown["progress"], len(shown["last_message"])) == (60, 59, 200)
    page = api.get(f"/api/v2/builds/{world.build.pk}/events/").json()
    assert page["count"] == 60 and len(page["results"]) == 50 and page["results"][0]["progress"] == 0
    assert len(api.get(page["next"]).json()["results"]) == 10


def test_an_upload_over_the_limit_is_a_413_before_it_is_read(client, admin_user, settings):
    settings.DOCK2BOX_UPLOAD_MAX_BYTES = 1000
    client.force_login(admin_user)
    response = client.post("/api/v2/images/", data=b"x" * 2000, content_type="application/octet-stream")
    assert response.status_code == 413 and "DOCK2BOX_UPLOAD_MAX_BYTES" in response.json()["detail"]


def test_deleting_or_replacing_a_version_deletes_its_stored_files(
    stored_kernel, settings, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    version = Image.objects.get(name="bootenv").versions.get()
    kernel, initrd = version.kernel.name, version.initrd.name
    assert default_storage.exists(kernel) and default_storage.exists(initrd)
    with django_capture_on_commit_callbacks(execute=True):
        image_services.image_version_update(version=version, data={"kernel": ContentFile(b"K2", name="vmlinuz")})
    assert not default_storage.exists(kernel) and default_storage.exists(version.kernel.name)
    with django_capture_on_commit_callbacks(execute=True):
        image_services.image_version_delete(version=version)
    assert not default_storage.exists(version.kernel.name) and not default_storage.exists(initrd)


@pytest.mark.slow
def test_several_web_workers_without_a_shared_cache_are_refused(tmp_path):
    env = {**os.environ, "DOCK2BOX_BIND": f"127.0.0.1:{free_port()}", "DOCK2BOX_WEB_WORKERS": "2",
           "DOCK2BOX_CACHE_URL": "", "CELERY_BROKER_URL": ""}  # fmt: skip
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "dock2box.wsgi", "--config", "deploy/gunicorn.conf.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "2 web workers need a shared cache: set DOCK2BOX_CACHE_URL" in done.stdout + done.stderr


def test_a_nul_character_in_a_lookup_is_a_400(client, admin_user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post("/api/v2/interfaces/", {"name": "eth0", "mac": "52:54:00:00:0e:01", "host": "a\x00b"})
    assert response.status_code == 400
    assert api.get("/api/v2/hosts/?site=a%00b").status_code in (200, 400)
    key = Token.objects.create(user=admin_user).key
    assert client.get("/api/v1/hosts/a%00b.example.com", HTTP_AUTHORIZATION=f"Token {key}").status_code in (400, 404)


def test_a_protecting_row_deleted_meanwhile_is_named_not_a_500(world):
    """A parallel request deletes the host that protects a version while the refusal is being written."""
    from django.db.models import ProtectedError

    from dock2box.api.exceptions import protected_names
    from hosts.models import Host

    deferred = Host.objects.only("pk").get(pk=world.idle_host.pk)  # as Django's deletion collector loads it
    Host.objects.filter(pk=world.idle_host.pk).delete()
    error = ProtectedError("in use", {deferred, world.build_host})
    assert protected_names(error) == [f"Host #{deferred.pk} (deleted meanwhile)", "build.ams1.example.com"]


def test_a_careless_client_gets_a_4xx_in_the_projects_shape_never_a_500_or_a_page(client, world, admin_user):
    """Each of these was a 500 or a 400 HTML page: NUL in a path or a filter, bad MACs in /api/v1 (an anonymous PUT
    too, which asked the database before it asked who), a non-object after a patch, a 5,000-digit number, a date out
    of range, a CSV field over 128 KiB, bodies over the limit; a host stored under its normalised name is answered."""
    from rest_framework.authtoken.models import Token

    auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=admin_user).key}"}
    body = "x" * 3_000_000
    csv = ("fqdn,site,image,version,kopts,labels,serial,asset_tag,interface,mac,ip,dhcp,primary\n"
           f"a.ams1.example.com,ams1,,,,{'x' * 140_000},,,eth0,52:54:00:00:10:01,,no,yes\n")  # fmt: skip
    patch = json.dumps([{"op": "replace", "path": "", "value": 5}])
    requests = [
        (400, lambda: client.get("/config/ab%00cd")),
        (400, lambda: client.post("/config/ab%00cd/events", "{}", content_type="application/json")),
        (400, lambda: client.post("/booted/ab%00", "{}", content_type="application/json")),
        (400, lambda: client.get("/files/boot/x%00/1/kernel")),
        (400, lambda: client.get("/api/v1/hwaddr/zz:zz", **auth)),
        (400, lambda: client.get("/api/v1/hwaddr/ff:ff:ff:ff:ff:ff", **auth)),
        (401, lambda: client.put("/api/v1/hwaddr/zz:zz", "{}", content_type="application/json")),
        (
            400,
            lambda: client.patch(
                f"/api/v1/hosts/{world.build_host.fqdn}", patch, content_type="application/json", **auth
            ),
        ),
        (
            400,
            lambda: client.put(
                "/api/v1/sites/big1", '{"domain": ' + "9" * 5000 + "}", content_type="application/json", **auth
            ),
        ),
        (400, lambda: client.get("/api/v2/history/?since=99999-01-01T00:00:00", **auth)),
        (400, lambda: client.generic("POST", "/api/v2/hosts/csv/", csv.encode(), content_type="text/csv", **auth)),
        (413, lambda: client.post("/config/x/events", body, content_type="application/json")),
        (413, lambda: client.post("/api/v2/sites/", body, content_type="application/json", **auth)),
        (
            200,
            lambda: client.put(
                "/api/v1/hosts/NEW1.AMS1.EXAMPLE.COM.",
                {"site": "ams1", "kopts": ""},
                content_type="application/json",
                **auth,
            ),
        ),
    ]
    for expected, request in requests:
        response = request()
        assert response.status_code == expected, response.content[:300]
        assert response["Content-Type"].startswith("application/json"), response.content[:300]
    client.force_login(admin_user)
    for path in ["/admin/hosts/host/?q=a%00b", "/admin/hosts/host/?site__id__exact=1%00"]:
        assert client.get(path).status_code == 400, path


def test_a_discovered_machine_is_registered_without_an_address_it_may_not_hold(client, admin_user):
    """A DHCP lease says nothing of the plan: an address another host holds, or one reserved, the gateway, the
    network or broadcast address, is left out (the history says why); the machine is registered all the same."""
    from django.utils import timezone

    from dock2box.models import History
    from hosts.models import Host

    site = factories.SiteFactory(domain="lab.example.com")
    subnet = factories.SubnetFactory(network="10.7.0.0/24", site=site, gateway="10.7.0.1", reserved="10.7.0.2-10.7.0.5")
    taken = factories.HostFactory(site=site, fqdn="a.lab.example.com")
    factories.InterfaceFactory(host=taken, mac="52:54:00:00:20:01", ip="10.7.0.9", subnet=subnet)
    client.force_login(admin_user)
    for number, ip in enumerate(["10.7.0.9", "10.7.0.3", "10.7.0.255", "10.7.0.1", "10.7.0.0", "10.7.0.50"]):
        found = DiscoveredHost.objects.create(mac=f"52:54:00:00:30:{number:02x}", ip=ip, last_seen=timezone.now())
        client.post("/admin/provisioning/discoveredhost/", {"action": "register", "_selected_action": [found.pk]})
        host = Host.objects.get(fqdn=f"5254000030{number:02x}.lab.example.com")
        assert host.interfaces.get().ip == (ip if ip == "10.7.0.50" else None), ip
        detail = History.objects.filter(object_id=host.pk, action="registered").get().detail
        assert ("left out" in detail) is (ip != "10.7.0.50"), detail


def test_an_admin_json_field_nested_too_deep_is_a_form_error(client, admin_user):
    version = factories.ImageVersionFactory()
    client.force_login(admin_user)
    page = client.get(f"/admin/images/imageversion/{version.pk}/change/")
    data = {name: ("" if value is None else value) for name, value in page.context["adminform"].form.initial.items()
            if name not in ("file", "kernel", "initrd")}  # fmt: skip
    data |= {"layers": "[" * 5000 + "]" * 5000, "timestamp_0": "2026-01-01", "timestamp_1": "00:00:00"}
    response = client.post(f"/admin/images/imageversion/{version.pk}/change/", data)
    assert response.status_code == 200 and "nested deeper than" in response.content.decode()

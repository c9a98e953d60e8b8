"""The boot path over HTTP: scripts for every shape of request, build mode from start to end, configs and events."""

import os
import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hosts import services as host_services
from hosts.models import Host, Interface
from images import services as image_services
from provisioning.builds.selectors import interface_for_boot
from provisioning.builds.services import build_first_boot_record, host_enter_build
from provisioning.catalogue.services import (
    boot_defaults_update,
    boot_template_create,
    pxe_menu_item_create,
    pxe_menu_update,
)
from provisioning.discovery.services import boot_seen
from provisioning.models import Build, BuildEvent, DiscoveredHost
from tests import factories
from tests.boot_world import BUILD_MAC, IDLE_MAC, UNKNOWN_MAC, make_world

GOLDEN = Path(__file__).parent / "golden"
TOKEN_RE = re.compile(r"/config/[A-Za-z0-9_-]{20,}")


@pytest.fixture
def world(db, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    return make_world()


def golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name> (tokens masked); UPDATE_GOLDEN=1 rewrites the file."""
    text = TOKEN_RE.sub("/config/TOKEN", text)
    text = re.sub(r"/booted/[A-Za-z0-9_-]+", "/booted/REPORT", text)
    text = re.sub(r"D2B_BUILD_ID='\d+'", "D2B_BUILD_ID='ID'", text)
    text = re.sub(r'"build_id": \d+', '"build_id": "ID"', text)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; UPDATE_GOLDEN=1 rewrites it after review"


def script(client, url: str, **extra: str) -> str:
    """The script a boot URL answers: iPXE's, or (`/grub...`) a GRUB config that GRUB's own parser accepts."""
    response = client.get(url, **extra)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    if url.startswith("/grub"):
        grub_check(text)
    else:
        assert text.startswith("#!ipxe\n")
    return text


def grub_check(text: str) -> None:
    """GRUB's own parser (`grub-script-check`, Debian's grub-common) accepts `text`."""
    checked = subprocess.run(["grub-script-check"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"{checked.stdout}{checked.stderr}\n{text}"


def kind(sql: str) -> str:
    """A statement's kind: UPDATE for the boot path's timestamp writes too (`WITH ... UPDATE` on PostgreSQL), SELECT
    for the boot path's prepared reads (`PREPARE ... AS SELECT`, then `EXECUTE`)."""
    if re.search(r"\bUPDATE\b", sql):
        return "UPDATE"
    return "SELECT" if sql.split()[0] in ("PREPARE", "EXECUTE") else sql.split()[0]


def token_of(text: str) -> str:
    return re.search(r"d2b\.config=\S+/config/([A-Za-z0-9_-]+)", text).group(1)


# Script shapes ---------------------------------------------------------------------------------------------------


def test_boot_ipxe_chains_with_the_host_identity(client, world):
    golden("boot.ipxe", script(client, "/boot.ipxe"))
    head = client.head("/boot.ipxe")  # UEFI HTTP boot asks HEAD first
    assert head.status_code == 200 and head["Content-Type"].startswith("text/plain")


def test_known_host_in_build_mode_defaults_to_install_bios(client, world):
    text = script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios&ip=10.0.0.11")
    golden("known-build-bios.ipxe", text)
    assert "choose --default install --timeout ${menu-timeout}" in text
    assert "set menu-timeout 5000" in text


def test_known_host_not_in_build_mode_defaults_to_local_boot_bios(client, world):
    text = script(client, f"/ipxe?mac={IDLE_MAC}&platform=pcbios&ip=10.0.0.12")
    golden("known-idle-bios.ipxe", text)
    assert "choose --default local" in text
    assert "sanboot --no-describe --drive 0x80" in text
    assert ":install" not in text


def test_known_host_uefi_boots_locally_with_exit(client, world):
    text = script(client, f"/ipxe?mac={IDLE_MAC}&platform=efi")
    golden("known-idle-uefi.ipxe", text)
    local = text.split(":local\n", 1)[1].split("\n:", 1)[0]
    assert "exit" in local
    assert "sanboot" not in local


def test_unknown_host_gets_the_menu_with_local_default_and_is_recorded(client, world):
    url = f"/ipxe?mac={UNKNOWN_MAC.upper()}&platform=pcbios&ip=10.0.0.99&serial=ABC123&uuid=0000-11&asset=$(x)"
    golden("unknown-bios.ipxe", script(client, url))
    discovered = DiscoveredHost.objects.get()
    assert (discovered.mac, discovered.ip, discovered.serial, discovered.uuid, discovered.asset) == (
        UNKNOWN_MAC,
        "10.0.0.99",
        "ABC123",
        "0000-11",
        "",
    )


def test_original_pxe_url_answers_like_ipxe(client, world):
    text = script(client, f"/pxe/{BUILD_MAC}?ipv4=10.0.0.11&netmask=255.255.255.0&gateway=10.0.0.1&serial=X")
    assert "item --gap -- hostname: build.ams1.example.com" in text
    assert "choose --default install" in text


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("/ipxe", "the request named no MAC address"),
        ("/ipxe?mac=", "the request named no MAC address"),
        ("/ipxe?mac=zz:zz", "'zz:zz' is not a MAC address"),
        ("/ipxe?mac=%0Achain%20http://evil/$%7Bx%7D", "is not a MAC address"),
        ("/pxe/not-a-mac", "'not-a-mac' is not a MAC address"),
        (f"/ipxe?mac={BUILD_MAC}&junk=" + "x" * 4000, "hostname: build.ams1.example.com"),
        (f"/ipxe?mac={BUILD_MAC}&ip=';reboot&platform=../../x", "hostname: build.ams1.example.com"),
    ],
)
def test_bad_input_still_gets_a_valid_script(client, world, url, says):
    text = script(client, url)
    assert says in text
    assert "$(" not in text
    assert "chain http://evil" not in text
    assert "reboot" not in text


def test_bad_mac_script_boots_locally(client, world):
    golden("bad-mac.ipxe", script(client, "/ipxe?mac=12345&platform=pcbios"))


def test_an_internal_error_still_gets_a_script(client, world, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("provisioning.boot.scripts.interface_for_boot", broken)
    text = script(client, f"/ipxe?mac={BUILD_MAC}&serial=a%20b%24%7Bx%7D%0Achain%20evil")
    assert "internal error" in text
    # It asks the same again (the query re-encoded: no iPXE syntax from it), a minute at most, then its disk.
    query = f"mac={BUILD_MAC.replace(':', '%3A')}&serial=a%20b%24%7Bx%7D%0Achain%20evil"
    assert f"chain --autofree http://portal.example.com:8000/ipxe?{query} || goto local" in text.splitlines()
    assert "iseq ${d2b_asked} xxxxxx && goto local ||" in text.splitlines()
    assert "sanboot" in text.split(":local")[1]


# Build mode -------------------------------------------------------------------------------------------------------


def test_build_mode_from_boot_to_installed(client, world):
    text = script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios")
    token = token_of(text)
    assert world.build.token == token

    config = client.get(f"/config/{token}")
    assert config.status_code == 200
    assert "D2B_HOSTNAME='build'" in config.content.decode()
    world.build_host.refresh_from_db()
    assert world.build_host.status == "building"
    assert Build.objects.get(pk=world.build.pk).state == "running"

    for stage, progress in [("config", 0), ("disk", 10), ("image", 50), ("configure", 80), ("bootloader", 90)]:
        response = client.post(
            f"/config/{token}/events", {"stage": stage, "progress": progress, "message": stage}, "application/json"
        )
        assert response.status_code == 201, response.content
    assert (
        client.post(f"/config/{token}/events", {"stage": "done", "progress": 100}, "application/json").status_code
        == 201
    )

    world.build_host.refresh_from_db()
    assert (world.build_host.build, world.build_host.status) == (False, "installed")
    build = Build.objects.get(pk=world.build.pk)
    assert (build.state, build.token) == ("done", None)
    assert list(build.events.values_list("stage", flat=True)) == [
        "config", "disk", "image", "configure", "bootloader", "done",
    ]  # fmt: skip
    assert client.get(f"/config/{token}").status_code == 403
    assert client.post(f"/config/{token}/events", {"stage": "disk"}, "application/json").status_code == 403
    assert "choose --default local" in script(client, f"/ipxe?mac={BUILD_MAC}")


def test_build_failure_ends_the_build_and_keeps_the_events(client, world):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    client.post(f"/config/{token}/events", {"stage": "disk", "progress": 5}, "application/json")
    response = client.post(
        f"/config/{token}/events", {"stage": "failed", "message": "sfdisk: /dev/vda: No space"}, "application/json"
    )
    assert response.status_code == 201
    world.build_host.refresh_from_db()
    assert (world.build_host.build, world.build_host.status) == (False, "failed")
    assert BuildEvent.objects.filter(build=world.build).count() == 2
    assert BuildEvent.objects.get(stage="failed").message == "sfdisk: /dev/vda: No space"
    assert client.get(f"/config/{token}").status_code == 403
    assert "choose --default local" in script(client, f"/ipxe?mac={BUILD_MAC}")


def test_a_lost_done_never_starts_a_second_install(client, world):
    """The installer wrote its bootloader, then its `done` was lost (the portal was away): the next PXE boot sends
    the host to its disk, and the build is closed unconfirmed."""
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios"))
    for stage in ["config", "disk", "image", "configure", "bootloader"]:
        client.post(f"/config/{token}/events", {"stage": stage, "progress": 100}, "application/json")

    text = script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios")
    assert "choose --default local" in text and ":install" not in text and "d2b.config" not in text
    assert "item --gap -- Note: the install wrote its bootloader but did not" in text
    build = Build.objects.get(pk=world.build.pk)
    assert (build.state, build.token) == ("unconfirmed", None)
    world.build_host.refresh_from_db()
    assert (world.build_host.build, world.build_host.status) == (False, "unconfirmed")
    assert client.post(f"/config/{token}/events", {"stage": "done"}, "application/json").status_code == 403
    assert "choose --default local" in script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios")
    assert Build.objects.filter(host=world.build_host).count() == 1


def test_a_host_rebooting_before_its_bootloader_installs_again(client, world):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    client.post(f"/config/{token}/events", {"stage": "image", "progress": 40}, "application/json")
    text = script(client, f"/ipxe?mac={BUILD_MAC}")
    assert "choose --default install" in text and token_of(text) == token


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda world: host_services.host_update(host=world.build_host, data={"image": None}), "the host has no image"),
        (
            lambda world: [image_services.image_version_delete(version=v) for v in world.debian.versions.all()],
            "image debian-12 has no version",
        ),
        (lambda world: boot_defaults_update(data={"boot_version": None}), "no boot environment is set"),
    ],
    ids=["no-image", "no-version", "no-bootenv"],
)
def test_a_host_that_cannot_install_boots_its_disk_and_the_menu_says_why(
    client, world, change, says, django_capture_on_commit_callbacks
):
    """Build mode is refused for such hosts; one that is in it anyway (data changed under it) never installs."""
    with django_capture_on_commit_callbacks(execute=True):
        change(world)
    text = script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios")
    assert "choose --default local" in text and ":install" not in text, text
    assert f"in build mode, but {says}" in " ".join(re.findall(r"item --gap -- (.*)", text))


def test_an_expired_token_is_refused_and_the_next_boot_mints_a_fresh_one(client, world, settings):
    old = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    Build.objects.filter(pk=world.build.pk).update(
        last_activity=timezone.now() - timedelta(seconds=settings.DOCK2BOX_BUILD_TOKEN_IDLE + 1)
    )
    assert client.get(f"/config/{old}").status_code == 403
    fresh = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    assert fresh != old
    assert client.get(f"/config/{old}").status_code == 403
    assert client.get(f"/config/{fresh}").status_code == 200
    assert Build.objects.filter(host=world.build_host).count() == 1


def test_a_late_boot_refreshes_the_token_lifetime(client, world, settings):
    half_gone = timezone.now() - timedelta(seconds=settings.DOCK2BOX_BUILD_TOKEN_IDLE * 0.75)
    Build.objects.filter(pk=world.build.pk).update(last_activity=half_gone)
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    assert token == world.build.token
    assert Build.objects.get(pk=world.build.pk).last_activity > half_gone + timedelta(minutes=1)


def test_a_slow_install_keeps_its_token_while_it_reports(client, world, settings):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    for _ in range(3):
        Build.objects.filter(pk=world.build.pk).update(
            last_activity=timezone.now() - timedelta(seconds=settings.DOCK2BOX_BUILD_TOKEN_IDLE - 5)
        )
        assert client.post(f"/config/{token}/events", {"stage": "image"}, "application/json").status_code == 201


def test_use_of_a_running_build_is_written_at_most_once_per_interval(client, world, settings):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    assert client.get(f"/config/{token}").status_code == 200  # pending -> running, activity written
    recent = timezone.now() - timedelta(seconds=settings.DOCK2BOX_LAST_SEEN_INTERVAL - 5)
    Build.objects.filter(pk=world.build.pk).update(last_activity=recent)
    assert client.get(f"/config/{token}").status_code == 200
    assert client.post(f"/config/{token}/events", {"stage": "image"}, "application/json").status_code == 201
    assert Build.objects.get(pk=world.build.pk).last_activity == recent  # a retry loop is not a write loop
    older = timezone.now() - timedelta(seconds=settings.DOCK2BOX_LAST_SEEN_INTERVAL + 1)
    Build.objects.filter(pk=world.build.pk).update(last_activity=older)
    before = timezone.now()
    assert client.get(f"/config/{token}").status_code == 200
    assert Build.objects.get(pk=world.build.pk).last_activity >= before


def test_a_token_of_a_host_that_left_build_mode_is_refused(client, world):
    from provisioning.builds.services import host_cancel_build

    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    host_cancel_build(host=world.build_host)
    assert client.get(f"/config/{token}").status_code == 403
    assert client.get("/config/not-a-token").status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stage": "partying"}, "stage"),
        ({"stage": "image", "progress": 101}, "progress"),
        ({"stage": "image", "progress": -1}, "progress"),
        ({"stage": "image", "progress": "50%"}, "progress"),
        ({"progress": 5}, "stage"),
        ({"stage": "booted", "message": "first boot reported"}, "stage"),  # the installed system's, not the installer's
    ],
)
def test_bad_events_are_400(client, world, body, field):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    response = client.post(f"/config/{token}/events", body, "application/json")
    assert response.status_code == 400
    assert field in response.json()
    assert not BuildEvent.objects.exists()


def test_events_body_must_be_a_json_object(client, world):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    assert client.post(f"/config/{token}/events", "not json", "application/json").status_code == 400
    assert client.post(f"/config/{token}/events", "[1]", "application/json").status_code == 400
    assert client.post(f"/config/{token}/events", "x" * 70000, "application/json").status_code == 413


def _pick(menu: str, image: str, version: str) -> str:
    """The chain URL the menu gives for an image version."""
    url = re.search(rf"chain --autofree (\S+/ipxe/install\?\S+&image={image}&version={version}&\S+) \|\|", menu)
    return url.group(1).split("portal.example.com:8000", 1)[1]


def test_a_version_picked_in_the_menu_installs_that_version(client, world, settings):
    settings.DOCK2BOX_MENU_INSTALL = True
    menu = script(client, f"/ipxe?mac={IDLE_MAC}&platform=pcbios")
    text = script(client, _pick(menu, "debian-12", "a"))
    assert "installing debian-12:a on idle.ams1.example.com" in text
    token = token_of(text)
    assert "D2B_IMAGE_VERSION='a'" in client.get(f"/config/{token}").content.decode()
    assert Host.objects.get(pk=world.idle_host.pk).build is True


def test_picking_in_the_menu_is_off_by_default(client, world):
    menu = script(client, f"/ipxe?mac={IDLE_MAC}&platform=pcbios")
    assert "/ipxe/install" not in menu
    assert "this menu cannot start installs" in menu
    assert "installing from the menu is off" in script(
        client, f"/ipxe/install?mac={IDLE_MAC}&image=debian-12&version=a"
    )
    assert Host.objects.get(pk=world.idle_host.pk).build is False


def test_a_forged_or_old_pick_is_refused(client, world, settings):
    settings.DOCK2BOX_MENU_INSTALL = True
    menu = script(client, f"/ipxe?mac={IDLE_MAC}&platform=pcbios")
    forged = _pick(menu, "debian-12", "a").replace("version=a", "version=b")
    assert "not the portal's" in script(client, forged)
    assert "not the portal's" in script(client, f"/ipxe/install?mac={IDLE_MAC}&image=debian-12&version=a")
    assert Host.objects.get(pk=world.idle_host.pk).build is False


def test_a_picked_version_installs_only_from_the_machine_and_the_build_state_its_menu_was_made_for(
    client, world, settings
):
    """Anyone may ask for a MAC's menu: its signed links work only from the address that asked, while the build is
    as it was, and never hand out the token of a build past its bootloader."""
    settings.DOCK2BOX_MENU_INSTALL = True
    menu = script(client, f"/ipxe?mac={IDLE_MAC}&platform=pcbios", REMOTE_ADDR="10.0.0.66")  # not the machine
    link = _pick(menu, "debian-12", "a")
    assert "not this machine's" in script(client, link)  # followed from 127.0.0.1, the machine
    assert not Host.objects.get(pk=world.idle_host.pk).build
    menu = script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios")
    Build.objects.filter(pk=world.build.pk).update(bootloader_started=timezone.now())
    text = script(client, _pick(menu, "debian-12", "a"))
    assert "past its bootloader" in text and world.build.token not in text


def test_an_unknown_host_cannot_pick_an_install(client, world, settings):
    from django.core.signing import TimestampSigner

    from provisioning.boot.scripts import PICK_SALT

    settings.DOCK2BOX_MENU_INSTALL = True
    assert "/ipxe/install" not in script(client, f"/ipxe?mac={UNKNOWN_MAC}&platform=pcbios")
    _, stamp, sig = TimestampSigner(salt=PICK_SALT).sign(f"{UNKNOWN_MAC}|debian-12|a|127.0.0.1|").rsplit(":", 2)
    text = script(client, f"/ipxe/install?mac={UNKNOWN_MAC}&image=debian-12&version=a&stamp={stamp}&sig={sig}")
    assert "register this MAC as a host" in text
    assert not Build.objects.filter(host__interfaces__mac=UNKNOWN_MAC).exists()


# Last seen and queries ---------------------------------------------------------------------------------------------


def test_last_seen_moves_and_writes_are_coalesced(client, world):
    assert world.idle_host.last_seen is None
    script(client, f"/ipxe?mac={IDLE_MAC}")
    first = Host.objects.get(pk=world.idle_host.pk).last_seen
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        script(client, f"/ipxe?mac={IDLE_MAC}")
    assert not [query for query in queries if query["sql"].startswith("UPDATE")]
    assert Host.objects.get(pk=world.idle_host.pk).last_seen == first


@pytest.mark.parametrize("mac", [BUILD_MAC, IDLE_MAC, UNKNOWN_MAC])
def test_a_boot_request_makes_at_most_three_queries(client, world, mac):
    script(client, "/ipxe?mac=52:54:00:00:00:42")  # warms the catalogue
    with CaptureQueriesContext(connection) as queries:
        script(client, f"/ipxe?mac={mac}&platform=pcbios&ip=10.0.0.50")
    assert len(queries) <= 3, [query["sql"] for query in queries]


# Per-host scripts from the shared cache (provisioning/bootcache.py): outside a test transaction, as served ----------


@pytest.fixture
def served_world(transactional_db, settings):
    """The world with every request in autocommit, as gunicorn serves it: commits move the generation, scripts are
    cached."""
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    return make_world()


def test_a_repeated_boot_is_answered_from_the_cache_without_sql(client, served_world):
    """No SQL for a known host's script; one look-up for an install script: its build still installs."""
    for mac, each in ((IDLE_MAC, 0), (BUILD_MAC, 1)):
        first = script(client, f"/ipxe?mac={mac}&platform=pcbios")
        with CaptureQueriesContext(connection) as queries:
            assert script(client, f"/ipxe?mac={mac}&platform=pcbios") == first
            assert script(client, f"/pxe/{mac}?platform=pcbios") == first  # the original's URL: the same request
        assert [kind(query["sql"]) for query in queries] == ["SELECT"] * 2 * each
    with CaptureQueriesContext(connection) as queries:
        efi = script(client, f"/ipxe?mac={IDLE_MAC}&platform=efi")
    assert len(queries) > 0 and "exit" in efi  # another request's values: another script, rendered


def test_from_the_cache_a_build_runs_to_its_end_and_the_host_boots_its_disk(client, served_world):
    url = f"/ipxe?mac={BUILD_MAC}&platform=pcbios"
    token = token_of(script(client, url))
    assert token_of(script(client, url)) == token  # cached
    assert client.get(f"/config/{token}").status_code == 200
    event = client.post(f"/config/{token}/events", {"stage": "image", "progress": 50}, "application/json")
    assert event.status_code == 201
    assert token_of(script(client, url)) == token  # a reboot mid-install installs again, with the same build
    assert client.post(f"/config/{token}/events", {"stage": "done"}, "application/json").status_code == 201
    text = script(client, url)
    assert "choose --default local" in text and "d2b.config" not in text


def test_from_the_cache_a_lost_done_never_starts_a_second_install(client, served_world):
    url = f"/ipxe?mac={BUILD_MAC}&platform=pcbios"
    token = token_of(script(client, url))
    assert token_of(script(client, url)) == token  # cached
    for stage in ["config", "disk", "image", "configure", "bootloader"]:
        client.post(f"/config/{token}/events", {"stage": stage, "progress": 100}, "application/json")
    text = script(client, url)
    assert "choose --default local" in text and "d2b.config" not in text
    assert Build.objects.get(pk=served_world.build.pk).state == "unconfirmed"


def test_a_version_picked_by_a_host_in_build_mode_is_on_its_next_boot_and_such_menus_are_not_kept(
    client, served_world, settings
):
    settings.DOCK2BOX_MENU_INSTALL = True
    url = f"/ipxe?mac={BUILD_MAC}&platform=pcbios"
    before = script(client, url)
    assert "item install Install debian-12:b" in before
    with CaptureQueriesContext(connection) as queries:
        script(client, url)
    assert queries  # rendered again: its links are signed for the machine that asked, never kept for another
    script(client, _pick(before, "debian-12", "a"))
    assert "item install Install debian-12:a" in script(client, url)


def test_one_hosts_install_keeps_the_other_hosts_cached_scripts_and_the_catalogue(client, served_world):
    from dock2box.changes import generation, generation_forget

    idle, build = f"/ipxe?mac={IDLE_MAC}", f"/ipxe?mac={BUILD_MAC}"
    cached = script(client, idle)
    token = token_of(script(client, build))
    catalogue = generation()
    assert client.get(f"/config/{token}").status_code == 200
    assert client.post(f"/config/{token}/events", {"stage": "bootloader"}, "application/json").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert script(client, idle) == cached
    assert len(queries) == 0  # another host's install left this one's script as it was
    assert "choose --default local" in script(client, build)  # its own is rendered again: the disk
    generation_forget()
    assert generation() == catalogue  # and no process rebuilds its catalogue for it


def test_a_host_edit_moves_only_its_own_macs_scripts(client, served_world):
    """A host's record changed through the services (the admin, both APIs, the CSV import): its scripts are rendered
    again, every other host's stays cached and no process rebuilds its catalogue."""
    from dock2box.changes import generation, generation_forget

    idle, build = f"/ipxe?mac={IDLE_MAC}", f"/ipxe?mac={BUILD_MAC}"
    cached = script(client, build)
    assert "idle.ams1.example.com" in script(client, idle)
    catalogue = generation()
    host_services.host_update(host=served_world.idle_host, data={"fqdn": "quiet.ams1.example.com"})
    assert "quiet.ams1.example.com" in script(client, idle)
    with CaptureQueriesContext(connection) as queries:
        assert script(client, build) == cached
    assert [kind(query["sql"]) for query in queries] == ["SELECT"]  # its build still installs: nothing rendered
    generation_forget()
    assert generation() == catalogue


def test_a_change_beyond_hosts_renders_every_script_again(client, served_world):
    assert "Dock2Box test" in script(client, f"/ipxe?mac={IDLE_MAC}")
    pxe_menu_update(menu=served_world.menu, data={"title": "Renamed menu"})
    assert "Renamed menu" in script(client, f"/ipxe?mac={IDLE_MAC}")


def test_a_mac_moved_away_no_longer_gets_its_cached_script(client, served_world):
    assert "idle.ams1.example.com" in script(client, f"/ipxe?mac={IDLE_MAC}")
    interface = Interface.objects.get(mac=IDLE_MAC)
    host_services.interface_update(interface=interface, data={"mac": "52:54:00:00:00:77"})
    assert "idle.ams1.example.com" not in script(client, f"/ipxe?mac={IDLE_MAC}")
    assert "idle.ams1.example.com" in script(client, "/ipxe?mac=52:54:00:00:00:77")


def test_an_unknown_mac_leaves_nothing_lasting_in_the_cache(client, served_world, settings):
    from django.core.cache import cache

    from dock2box.changes import mac_generation_key

    settings.DOCK2BOX_BOOT_CACHE_SECONDS = 1
    script(client, f"/ipxe?mac={UNKNOWN_MAC}")
    assert cache.get(mac_generation_key(UNKNOWN_MAC)) is not None
    time.sleep(1.1)
    assert cache.get(mac_generation_key(UNKNOWN_MAC)) is None


def test_a_change_through_the_services_is_on_the_next_boot_and_one_around_them_within_the_cache_time(
    client, served_world, settings
):
    settings.DOCK2BOX_BOOT_CACHE_SECONDS = 1
    url = f"/ipxe?mac={IDLE_MAC}"
    assert "choose --default local" in script(client, url)
    host_enter_build(host=served_world.idle_host)
    assert "choose --default install" in script(client, url)
    Host.objects.filter(pk=served_world.idle_host.pk).update(fqdn="renamed.ams1.example.com")  # SQL by hand
    assert "renamed" not in script(client, url)
    time.sleep(1.1)
    assert "renamed" in script(client, url)


def test_a_host_that_keeps_rebooting_sees_a_change_around_the_services_within_the_cache_time(
    client, served_world, settings
):
    """Storing an entry again (its last seen written) keeps the moment it was rendered: a change by SQL is answered
    within DOCK2BOX_BOOT_CACHE_SECONDS however often the host boots."""
    settings.DOCK2BOX_BOOT_CACHE_SECONDS, settings.DOCK2BOX_LAST_SEEN_INTERVAL = 2, 0
    url = f"/ipxe?mac={IDLE_MAC}"
    script(client, url)
    Host.objects.filter(pk=served_world.idle_host.pk).update(fqdn="renamed.ams1.example.com")  # SQL by hand
    deadline = time.monotonic() + 2.5
    while "renamed" not in script(client, url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "renamed" in script(client, url)


def test_a_cached_build_script_is_rendered_again_when_its_token_is_due_to_be_touched(client, served_world, settings):
    settings.DOCK2BOX_BUILD_TOKEN_IDLE = 4
    touched = timezone.now() - timedelta(seconds=1.5)  # the token is touched 2 s after its last use
    Build.objects.filter(pk=served_world.build.pk).update(last_activity=touched)
    url = f"/ipxe?mac={BUILD_MAC}"
    token = token_of(script(client, url))
    time.sleep(0.6)
    assert token_of(script(client, url)) == token
    assert Build.objects.get(pk=served_world.build.pk).last_activity > touched  # the long way: touched


def test_from_the_cache_last_seen_is_still_written_once_per_interval(client, served_world, settings):
    settings.DOCK2BOX_LAST_SEEN_INTERVAL = 1
    url = f"/ipxe?mac={IDLE_MAC}"
    script(client, url)
    first = Host.objects.get(pk=served_world.idle_host.pk).last_seen
    with CaptureQueriesContext(connection) as queries:
        script(client, url)
    assert len(queries) == 0
    time.sleep(1.05)
    with CaptureQueriesContext(connection) as queries:
        script(client, url)
        script(client, url)
    assert [kind(query["sql"]) for query in queries] == ["UPDATE"]  # from the cache, the write alone
    assert Host.objects.get(pk=served_world.idle_host.pk).last_seen > first


def test_scripts_rendered_ahead_are_the_long_ways_and_their_first_answer_writes_what_a_boot_writes(
    client, served_world, settings
):
    from provisioning.boot.tasks import boot_scripts_render_ahead

    settings.DOCK2BOX_PUBLIC_URL = ""
    assert boot_scripts_render_ahead() == 0  # a script's portal is not known before a host asks
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    assert boot_scripts_render_ahead() == 6  # two hosts, iPXE on two platforms and GRUB; eth1 shows its boot address
    urls = [f"/ipxe?mac={mac}&platform=pcbios&ip=10.0.0.{n}" for mac, n in [(IDLE_MAC, 12), (BUILD_MAC, 11)]]
    with CaptureQueriesContext(connection) as queries:
        ahead = [script(client, url) for url in urls]
    writes = [kind(query["sql"]) for query in queries]
    # Last seen of each host, the build's first boot; one read: the install script's build still installs.
    assert sorted(writes) == ["SELECT", "UPDATE", "UPDATE", "UPDATE"]
    assert Build.objects.get(pk=served_world.build.pk).first_boot is not None
    assert Host.objects.get(pk=served_world.idle_host.pk).last_seen is not None
    with CaptureQueriesContext(connection) as queries:
        assert [script(client, url) for url in urls] == ahead
    assert [kind(query["sql"]) for query in queries] == ["SELECT"]
    urls += [url.replace("pcbios", "efi") for url in urls] + [url.replace("/ipxe", "/grub") for url in urls]
    ahead += [script(client, url) for url in urls[2:]]
    settings.DOCK2BOX_BOOT_CACHE_SECONDS = 0
    assert [script(client, url) for url in urls] == ahead  # what the long way renders


def test_rendering_ahead_leaves_to_the_boot_what_only_a_boot_may_do(client, served_world):
    from provisioning.boot.scripts import scripts_render_ahead

    portal = "http://portal.example.com:8000"
    Build.objects.filter(pk=served_world.build.pk).update(bootloader_started=timezone.now())
    assert scripts_render_ahead(portal=portal, now=timezone.now()) == 3  # the build past its bootloader: not ahead
    assert "choose --default local" in script(client, f"/ipxe?mac={BUILD_MAC}&platform=pcbios")
    assert Build.objects.get(pk=served_world.build.pk).state == "unconfirmed"  # closed by the boot, not ahead
    host_enter_build(host=served_world.idle_host)
    later = timezone.now() + timedelta(seconds=1)
    assert scripts_render_ahead(portal=portal, now=later) == 6  # build.ams1 left build mode; idle.ams1 entered it
    Build.objects.filter(host=served_world.idle_host).update(last_activity=timezone.now() - timedelta(days=1))
    assert scripts_render_ahead(portal=portal, now=later) == 3  # its token is due to be renewed: by the boot


def test_a_change_after_rendering_ahead_is_on_the_next_boot(client, served_world):
    from provisioning.boot.scripts import scripts_render_ahead

    url = f"/ipxe?mac={BUILD_MAC}&platform=pcbios&ip=10.0.0.11"
    scripts_render_ahead(portal="http://portal.example.com:8000", now=timezone.now())
    token = token_of(script(client, url))
    assert client.post(f"/config/{token}/events", {"stage": "done"}, "application/json").status_code == 201
    assert "choose --default local" in script(client, url)
    host_enter_build(host=served_world.idle_host)
    assert "choose --default install" in script(client, f"/ipxe?mac={IDLE_MAC}&platform=pcbios&ip=10.0.0.12")


def test_a_cached_script_showing_the_request_address_is_not_given_to_another_address(client, served_world):
    dhcp = "/ipxe?mac=52:54:00:00:01:01&platform=pcbios&ip="  # build.ams1's eth1 has no address of its own
    assert "ip: 10.0.0.50" in script(client, dhcp + "10.0.0.50")
    assert "ip: 10.0.0.51" in script(client, dhcp + "10.0.0.51")
    idle = f"/ipxe?mac={IDLE_MAC}&platform=pcbios&ip="
    first = script(client, idle + "10.0.0.50")
    with CaptureQueriesContext(connection) as queries:
        assert script(client, idle + "10.0.0.51") == first  # shows its own address, 10.0.0.12, whatever it boots with
    assert len(queries) == 0


def test_the_boot_paths_timestamp_writes_do_not_wait_for_the_disk_unless_inside_a_transaction(served_world):
    from django.db import transaction

    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        boot_seen(host_id=served_world.idle_host.pk, last_seen=None, now=now)
        with transaction.atomic():  # other writes may share its commit: that one waits, as they must
            boot_seen(host_id=served_world.idle_host.pk, last_seen=None, now=now)
    lazy = ["synchronous_commit" in query["sql"] for query in queries if kind(query["sql"]) == "UPDATE"]
    assert lazy == [connection.vendor == "postgresql", False]
    assert Host.objects.get(pk=served_world.idle_host.pk).last_seen == now


def wsgi_get(app, path: str, host: str = "testserver") -> tuple[str, dict[str, str], bytes]:
    """A GET through a WSGI application as gunicorn calls it: status, headers, body."""
    import io

    route, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": route, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "HTTP_HOST": host, "REMOTE_ADDR": "10.0.0.12", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
    }  # fmt: skip
    answer = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    chunks = app(environ, start_response)
    body = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return answer["status"], answer["headers"], body


class RecordingDjango:
    """Django's WSGI handler, recording which paths reached it."""

    def __init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        self.handler, self.paths = WSGIHandler(), []

    def __call__(self, environ, start_response):
        self.paths.append(environ["PATH_INFO"] + "?" + environ["QUERY_STRING"])
        return self.handler(environ, start_response)


def test_the_boot_front_answers_as_django_does_and_leaves_it_all_else(served_world, settings):
    from provisioning.boot.front import BootFront
    from provisioning.boot.scripts import scripts_render_ahead

    django = RecordingDjango()
    front = BootFront(django)
    scripts_render_ahead(portal=settings.DOCK2BOX_PUBLIC_URL, now=timezone.now())
    hit = f"/ipxe?mac={IDLE_MAC}&platform=pcbios&ip=10.0.0.12"
    with CaptureQueriesContext(connection) as queries:
        answers = [wsgi_get(front, path) for path in (hit, "/boot.ipxe", hit)]
    assert django.paths == [] and [kind(query["sql"]) for query in queries] == ["UPDATE"]  # last seen, once
    assert Host.objects.get(pk=served_world.idle_host.pk).last_seen is not None
    for path, answer in zip([hit, "/boot.ipxe"], answers, strict=False):
        status, headers, body = wsgi_get(django, path)
        assert answer == (status, headers, body), path  # the same bytes and headers as Django's stack gives
    assert answers[0][1]["X-Frame-Options"] == "DENY" and answers[0][2].startswith(b"#!ipxe")

    django.paths.clear()
    passed = [
        f"/ipxe?mac={UNKNOWN_MAC}",  # no entry: the long way
        f"/ipxe?mac={IDLE_MAC}&platform=efi&ip=10.0.0.12&uuid=x",  # rendered ahead: answered
        "/ipxe?mac=not-a-mac",  # Django's view says what is wrong
        "/ipxe/install?mac=x",  # not the front's
        "/api/v2/hosts/",
    ]
    for path in passed:
        wsgi_get(front, path)
    status, _, _ = wsgi_get(front, hit, host="evil.example.com")  # a Host Django refuses: Django answers it,
    assert status.startswith("200")  # with a script all the same (provisioning.boot.middleware)
    settings.DOCK2BOX_PUBLIC_URL = ""  # the portal's address comes from each request: Django's
    wsgi_get(front, "/boot.ipxe")
    assert [path.split("?")[0] for path in django.paths] == [
        "/ipxe", "/ipxe", "/ipxe/install", "/api/v2/hosts/", "/ipxe", "/boot.ipxe"
    ]  # fmt: skip


def test_the_boot_paths_timestamp_writes_go_out_together_within_the_flush_time(client, served_world, settings):
    from dock2box.timestamps import timestamps_write_waiting

    settings.DOCK2BOX_TIMESTAMP_FLUSH = 0.2
    hosts = [served_world.idle_host.pk, served_world.build_host.pk]
    with CaptureQueriesContext(connection) as queries:
        for host_id in hosts:
            boot_seen(host_id=host_id, last_seen=None, now=timezone.now())
        build_first_boot_record(build_id=served_world.build.pk, now=timezone.now())
    assert [kind(query["sql"]) for query in queries if kind(query["sql"]) == "UPDATE"] == []  # waiting
    deadline = time.monotonic() + 5

    def waiting() -> bool:  # one statement per column, one after the other: both are waited for
        unseen = Host.objects.filter(pk__in=hosts, last_seen__isnull=True).exists()
        return unseen or Build.objects.get(pk=served_world.build.pk).first_boot is None

    while waiting() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Host.objects.filter(pk__in=hosts, last_seen__isnull=True).exists()  # written by the process's thread
    assert Build.objects.get(pk=served_world.build.pk).first_boot is not None
    first = Build.objects.get(pk=served_world.build.pk).first_boot
    build_first_boot_record(build_id=served_world.build.pk, now=timezone.now())
    timestamps_write_waiting()
    assert Build.objects.get(pk=served_world.build.pk).first_boot == first  # a first boot is written once


def test_the_boot_lookup_is_a_statement_prepared_once_per_session_and_never_deallocates_others(served_world, caplog):
    """Prepared once per session; a session that lost its statements (a pooler the check missed, a DISCARD) runs them
    unprepared from then on and deallocates nothing: behind a pooler, the server session is other clients' too."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    fqdn = interface_for_boot(mac=IDLE_MAC).interface.host.fqdn
    with CaptureQueriesContext(connection) as queries:
        assert interface_for_boot(mac=IDLE_MAC).interface.host.fqdn == fqdn
    assert [query["sql"].split()[0] for query in queries] == ["EXECUTE"]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # the session forgot it
        cursor.execute("PREPARE other_client AS SELECT 1")  # what a pooler's next client left in the session
    with CaptureQueriesContext(connection) as queries:
        assert interface_for_boot(mac=IDLE_MAC).interface.host.fqdn == fqdn  # as it is
        assert interface_for_boot(mac=BUILD_MAC).interface.host.fqdn == "build.ams1.example.com"
    assert [query["sql"].split()[0] for query in queries] == ["EXECUTE", "SELECT", "SELECT"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        assert [row[0] for row in cursor.fetchall()] == ["other_client"]
    assert "do not stay in this database session" in caplog.text


def test_a_session_behind_a_pooler_prepares_nothing(served_world, settings, monkeypatch):
    """The check: a session whose announced backend is not the one running its statements (pgbouncer answers with a
    cancel key of its own) prepares nothing; nor does any session with `DATABASE_PREPARED_STATEMENTS=off`."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    connection.close()
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as queries:
        interface_for_boot(mac=IDLE_MAC)
    assert [query["sql"].split()[0] for query in queries] == ["SELECT", "PREPARE"]  # the check, then prepared
    connection.close()
    connection.ensure_connection()
    monkeypatch.setattr(type(connection.connection.info), "backend_pid", -1)  # as pgbouncer's cancel key says
    with CaptureQueriesContext(connection) as queries:
        interface_for_boot(mac=IDLE_MAC)
        interface_for_boot(mac=IDLE_MAC)
    assert [query["sql"].split()[0] for query in queries] == ["SELECT"] * 3  # the check once, then as they are
    connection.close()
    settings.DATABASE_PREPARED_STATEMENTS = "off"
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as queries:
        interface_for_boot(mac=IDLE_MAC)
    assert [query["sql"].split()[0] for query in queries] == ["SELECT"]


def test_inside_a_transaction_nothing_is_cached(client, world):
    script(client, f"/ipxe?mac={IDLE_MAC}")
    with CaptureQueriesContext(connection) as queries:
        script(client, f"/ipxe?mac={IDLE_MAC}")
    assert len(queries) > 0


@pytest.mark.parametrize("fmt", ["env", "json", "kickstart"])
def test_a_repeated_config_fetch_is_one_query(client, world, fmt):
    """The build, its host and the host's interfaces in one statement; no write once the build is running."""
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    assert client.get(f"/config/{token}").status_code == 200  # the first: binds the build, marks it running
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/config/{token}?format={fmt}").status_code == 200
    assert len(queries) == 1, [query["sql"] for query in queries]


def test_a_change_is_visible_on_the_next_boot(client, world, django_capture_on_commit_callbacks):
    from images.services import image_update

    assert "item i1 debian-12" in script(client, f"/ipxe?mac={IDLE_MAC}")
    with django_capture_on_commit_callbacks(execute=True):
        image_update(image=world.debian, data={"name": "debian-13"})
    assert "item i1 debian-13" in script(client, f"/ipxe?mac={IDLE_MAC}")


# Configs ---------------------------------------------------------------------------------------------------------


def test_env_and_json_configs(client, world):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    golden("config-build.env", client.get(f"/config/{token}").content.decode().replace(token, "TOKEN"))
    document = client.get(f"/config/{token}?format=json").json()
    assert document["image_source"] == {
        "registry": "registry.example.com:5000",
        "registry_url": "https://registry.example.com:5000",
        "repository": "dock2box/debian",
        "tag": "b",
        "digest": "sha256:" + "b" * 64,
        "size": None,
    }
    assert document["secrets"]["registry_password"] == "s3cret-pull"
    assert [interface["name"] for interface in document["interfaces"]] == ["eth0", "eth1"]


def test_secrets_appear_only_with_a_valid_token(client, world):
    for url in [f"/ipxe?mac={BUILD_MAC}", f"/ipxe?mac={IDLE_MAC}", "/boot.ipxe", f"/pxe/{BUILD_MAC}"]:
        text = script(client, url)
        assert "s3cret-pull" not in text and "$6$salt$hash" not in text
    assert client.get("/config/guess").status_code == 403


def test_hostile_values_stay_inside_their_quotes(client, world, tmp_path, django_capture_on_commit_callbacks):
    """Allowed punctuation in kernel options and anything in scripts survive a real shell's `.` unchanged."""
    hostile_script = "echo '$(reboot)' \"`id`\"\nrm -rf / ; exit 1 # it's"
    with django_capture_on_commit_callbacks(execute=True):
        image_services.image_update(
            image=world.debian, data={"main_script": hostile_script, "kopts": "a=(b) !c *d ?e [f] ^g %h ~i"}
        )
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    env_file = tmp_path / "config.env"
    env_file.write_bytes(client.get(f"/config/{token}").content)
    printed = subprocess.run(
        ["sh", "-c", f'. "{env_file}" && printf "%s\\n--\\n%s" "$D2B_MAIN_SCRIPT" "$D2B_KOPTS"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == f"{hostile_script}\n--\nconsole=ttyS0 a=(b) !c *d ?e [f] ^g %h ~i nomodeset"


def test_kickstart_template_chosen_host_then_image_then_site_then_default(
    client, world, django_capture_on_commit_callbacks
):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))

    def kickstart() -> tuple[str, str]:
        response = client.get(f"/config/{token}?format=kickstart")
        return response.content.decode(), response["X-Dock2Box-Template"]

    assert kickstart()[1] == "templates/config/kickstart.ks (stock)"
    with django_capture_on_commit_callbacks(execute=True):
        boot_template_create(data={"name": "all", "kind": "kickstart", "content": "default {{ fqdn }}"})
    assert kickstart() == ("default build.ams1.example.com", "all (default)")
    with django_capture_on_commit_callbacks(execute=True):
        boot_template_create(
            data={"name": "site", "kind": "kickstart", "site": world.site, "content": "site {{ site }}"}
        )
    assert kickstart() == ("site ams1", "site (site ams1)")
    with django_capture_on_commit_callbacks(execute=True):
        boot_template_create(
            data={"name": "image", "kind": "kickstart", "image": world.debian, "content": "image {{ image }}"}
        )
    assert kickstart() == ("image debian-12", "image (image debian-12)")
    with django_capture_on_commit_callbacks(execute=True):
        boot_template_create(
            data={"name": "host", "kind": "kickstart", "host": world.build_host, "content": "host {{ hostname }}"}
        )
    assert kickstart() == ("host build", "host (host build.ams1.example.com)")
    preseed = client.get(f"/config/{token}?format=preseed")
    assert preseed.status_code == 200 and preseed["X-Dock2Box-Template"] == "templates/config/preseed.cfg (stock)"
    assert client.get(f"/config/{token}?format=yaml").status_code == 400


def test_json_config_document(client, world):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    golden("config-build.json", client.get(f"/config/{token}?format=json").content.decode().replace(token, "TOKEN"))


# Boot files ------------------------------------------------------------------------------------------------------


@pytest.fixture
def stored_kernel(db, settings, tmp_path):
    from django.core.files.base import ContentFile

    settings.MEDIA_ROOT = tmp_path
    version = factories.ImageVersionFactory(image=factories.BootImageFactory(name="bootenv"), version="2")
    version.kernel.save("kernel", ContentFile(bytes(range(256)) * 40))
    return bytes(range(256)) * 40


def test_a_stored_kernel_is_served_whole_and_by_range(client, stored_kernel):
    url = "/files/boot/bootenv/2/kernel"
    whole = client.get(url)
    assert (whole.status_code, whole["Content-Length"], whole["Accept-Ranges"]) == (200, "10240", "bytes")
    assert b"".join(whole.streaming_content) == stored_kernel
    for header, start, end in [("bytes=0-99", 0, 99), ("bytes=10000-", 10000, 10239), ("bytes=-40", 10200, 10239),
                               ("bytes=10200-99999", 10200, 10239)]:  # fmt: skip
        part = client.get(url, HTTP_RANGE=header)
        assert part.status_code == 206, header
        assert part["Content-Range"] == f"bytes {start}-{end}/10240"
        assert part["Content-Length"] == str(end - start + 1)
        assert b"".join(part.streaming_content) == stored_kernel[start : end + 1]
    assert client.get(url, HTTP_RANGE="bytes=20000-").status_code == 416
    assert client.get(url, HTTP_RANGE="bytes=5-1").status_code == 416
    assert client.get(url, HTTP_RANGE="pages=1-2").status_code == 200


def test_if_range_serves_a_range_only_of_the_file_the_client_holds(client, stored_kernel):
    """RFC 9110 13.1.5: a range is served when If-Range names this file (its ETag, or its Last-Modified date), else
    the whole file."""
    url = "/files/boot/bootenv/2/kernel"
    whole = client.get(url)
    etag, modified = whole["ETag"], whole["Last-Modified"]
    for validator in (etag, modified):
        part = client.get(url, HTTP_RANGE="bytes=0-99", HTTP_IF_RANGE=validator)
        assert (part.status_code, part["Content-Length"]) == (206, "100"), validator
    for stale in ('"0-0"', "Thu, 01 Jan 2015 00:00:00 GMT", f"W/{etag}"):
        answer = client.get(url, HTTP_RANGE="bytes=0-99", HTTP_IF_RANGE=stale)
        assert (answer.status_code, answer["Content-Length"]) == (200, "10240"), stale
        assert b"".join(answer.streaming_content) == stored_kernel


def test_nginx_sends_stored_files_when_told_to(client, stored_kernel, settings):
    settings.DOCK2BOX_FILES_ACCEL_REDIRECT = "/protected-media/"
    response = client.get("/files/boot/bootenv/2/kernel", HTTP_RANGE="bytes=0-99")
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == "/protected-media/boot/kernel"
    assert client.get("/files/boot/bootenv/2/initrd").status_code == 404


def test_missing_boot_files_are_404(client, stored_kernel):
    assert client.get("/files/boot/bootenv/2/initrd").status_code == 404
    assert client.get("/files/boot/bootenv/9/kernel").status_code == 404
    assert client.get("/files/boot/bootenv/2/etc-passwd").status_code == 404


# The options each command the renderers emit may carry, with how many words each takes. iPXE's getopt reads options
# until the first other word or `--`: a value of ours must never be read as one.
IPXE_OPTIONS = {
    "item": {"--gap": 0, "--key": 1}, "choose": {"--default": 1, "--timeout": 1}, "chain": {"--autofree": 0},
    "initrd": {"--name": 1}, "sanboot": {"--no-describe": 0, "--drive": 1},
}  # fmt: skip


def assert_no_injected_option(text: str) -> None:
    for line in text.splitlines():
        command, *words = line.split() or [""]
        allowed, index = IPXE_OPTIONS.get(command, {}), 0
        while index < len(words) and words[index] != "--" and words[index].startswith("-"):
            assert words[index] in allowed, f"{words[index]!r} is read as an option of {command!r}: {line!r}"
            index += 1 + allowed[words[index]]


def test_a_value_starting_with_a_dash_is_never_an_ipxe_option(client, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        pxe_menu_update(menu=world.menu, data={"title": "--delete"})
        pxe_menu_item_create(data={"menu": world.menu, "key": "dash", "label": "--gap x", "commands": "shell"})
        boot_defaults_update(data={"menu_name": "--name x", "submenu_name": "-k"})
    for url in [f"/ipxe?mac={BUILD_MAC}", f"/ipxe?mac={IDLE_MAC}&platform=efi", f"/ipxe?mac={UNKNOWN_MAC}"]:
        text = script(client, url)
        assert_no_injected_option(text)
    assert "menu -- --delete" in script(client, f"/ipxe?mac={BUILD_MAC}")
    assert_no_injected_option(script(client, "/boot.ipxe"))


def test_the_option_check_catches_an_injected_option():
    with pytest.raises(AssertionError, match="'--delete' is read as an option of 'menu'"):
        assert_no_injected_option("menu --delete")
    assert_no_injected_option("menu -- --delete\nitem --key 0x08 start Back\nchoose --default a --timeout 5 t")


def test_the_first_client_binds_the_build_and_others_are_refused_and_recorded(client, world):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    assert client.get(f"/config/{token}", REMOTE_ADDR="10.0.0.11").status_code == 200
    assert client.get(f"/config/{token}", REMOTE_ADDR="10.0.0.11").status_code == 200  # a retry of the installer

    stolen = client.get(f"/config/{token}", REMOTE_ADDR="10.0.0.66")
    assert stolen.status_code == 403 and b"s3cret" not in stolen.content
    forged = client.post(f"/config/{token}/events", {"stage": "done"}, "application/json", REMOTE_ADDR="10.0.0.66")
    assert forged.status_code == 403
    build = Build.objects.get(pk=world.build.pk)
    assert (build.state, build.client_address, build.refusals) == ("running", "10.0.0.11", 2)
    assert "event from 10.0.0.66 refused: the build is bound to 10.0.0.11" in build.last_refusal
    world.build_host.refresh_from_db()
    assert world.build_host.status == "building" and world.build_host.build

    ok = client.post(f"/config/{token}/events", {"stage": "disk"}, "application/json", REMOTE_ADDR="10.0.0.11")
    assert ok.status_code == 201


def test_the_config_is_refused_once_the_bootloader_is_being_written(client, world):
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    client.post(f"/config/{token}/events", {"stage": "bootloader", "progress": 0}, "application/json")
    assert client.get(f"/config/{token}").status_code == 403
    assert client.post(f"/config/{token}/events", {"stage": "done"}, "application/json").status_code == 201


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(client, world, settings):
    settings.DOCK2BOX_TRUSTED_PROXIES = ["10.9.9.9"]
    token = token_of(script(client, f"/ipxe?mac={BUILD_MAC}"))
    via_proxy = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 10.0.0.11"}
    assert client.get(f"/config/{token}", **via_proxy).status_code == 200
    assert Build.objects.get(pk=world.build.pk).client_address == "10.0.0.11"
    other = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_FOR": "10.0.0.66"}
    assert client.get(f"/config/{token}", **other).status_code == 403
    untrusted = {"REMOTE_ADDR": "10.0.0.66", "HTTP_X_FORWARDED_FOR": "10.0.0.11"}  # not a proxy: the header is ignored
    assert client.get(f"/config/{token}", **untrusted).status_code == 403


def test_the_boot_lookup_reads_what_the_orm_reads(world):
    """The one-statement lookup maps its row to the same values as the ORM (it uses only public API: a cursor, the
    models' metadata, Model.from_db); if a Django upgrade changes what a driver returns, this says where."""
    from provisioning.builds.selectors import build_for_token, host_interfaces, interface_for_boot

    world.build_host.uuid = "12345678-1234-5678-1234-567812345678"
    world.build_host.last_seen = timezone.now()
    world.build_host.save()
    lookup = interface_for_boot(mac=BUILD_MAC)
    orm = Interface.objects.select_related("host", "subnet").get(mac=BUILD_MAC)
    for fast, slow in [
        (lookup.interface, orm),
        (lookup.interface.host, orm.host),
        (lookup.interface.subnet, orm.subnet),
    ]:
        for field in type(slow)._meta.concrete_fields:
            assert getattr(fast, field.attname) == getattr(slow, field.attname), field.attname
            assert type(getattr(fast, field.attname)) is type(getattr(slow, field.attname)), field.attname
    build = Build.objects.get(pk=world.build.pk)
    assert (lookup.build_id, lookup.build_token, lookup.build_activity) == (build.pk, build.token, build.last_activity)
    assert interface_for_boot(mac=UNKNOWN_MAC) is None
    # the config path's: an open build by token with its host and the host's interfaces with their subnets; the
    # interfaces alone (previews, install checks)
    found = build_for_token(token=build.token)
    slow_interfaces = list(world.build_host.interfaces.select_related("subnet").order_by("-primary", "name"))
    for fast_interfaces in [found.interfaces, host_interfaces(host=world.build_host)]:
        pairs = [(found.build, build), (found.build.host, build.host)]
        assert [nic.name for nic in fast_interfaces] == [nic.name for nic in slow_interfaces] == ["eth0", "eth1"]
        pairs += [(fast, slow) for fast, slow in zip(fast_interfaces, slow_interfaces, strict=True)]
        pairs += [(fast_interfaces[0].subnet, slow_interfaces[0].subnet)]
        assert fast_interfaces[1].subnet is None and fast_interfaces[0].host.pk == world.build_host.pk
        for fast, slow in pairs:
            for field in type(slow)._meta.concrete_fields:
                assert getattr(fast, field.attname) == getattr(slow, field.attname), field.attname
    assert found.interfaces[0].host is found.build.host
    assert build_for_token(token="nope") is None and build_for_token(token="") is None
    world.build_host.interfaces.all().delete()  # a host without interfaces still has its build found
    assert build_for_token(token=build.token).interfaces == []


def test_a_change_is_seen_at_once_here_and_within_the_check_interval_elsewhere(
    client, world, settings, django_capture_on_commit_callbacks
):
    """The boot catalogue's generation is read from the shared cache at most every DOCK2BOX_GENERATION_CHECK seconds."""
    from django.core.cache import cache

    from dock2box.changes import GENERATION_KEY, generation

    settings.DOCK2BOX_GENERATION_CHECK = 0.3
    first = generation()
    cache.set(GENERATION_KEY, "changed-by-another-process")
    assert generation() == first  # not asked again yet
    time.sleep(0.35)
    assert generation() == "changed-by-another-process"
    with django_capture_on_commit_callbacks(execute=True):
        pxe_menu_update(menu=world.menu, data={"title": "Renamed"})
    assert generation() not in (first, "changed-by-another-process")  # this process's own change: at once
    assert "Renamed" in script(client, f"/ipxe?mac={IDLE_MAC}")


@pytest.mark.parametrize(("path", "links"), [("/boot.ipxe", True), (f"/ipxe?mac={BUILD_MAC}", True),
                                             (f"/pxe/{IDLE_MAC}", False)])  # fmt: skip
def test_a_booting_host_gets_a_script_whatever_host_its_firmware_names(client, world, settings, path, links):
    """Its addresses come from DOCK2BOX_PUBLIC_URL, never from the Host header; without it, a Host Django does not
    accept gets a script that boots the disk (no address is built from that header), never Django's 400 page."""
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    answer = client.get(path, HTTP_HOST="evil.example.net")
    text = answer.content.decode()
    assert answer.status_code == 200 and text.startswith("#!ipxe") and "evil" not in text
    assert ("http://portal.example.com:8000/" in text) is links
    settings.DOCK2BOX_PUBLIC_URL = ""
    answer = client.get(path, HTTP_HOST="evil.example.net")
    text = answer.content.decode()
    assert answer.status_code == 200 and text.startswith("#!ipxe") and "evil" not in text
    assert "DOCK2BOX_PUBLIC_URL" in text and "sanboot" in text
    assert client.get("/api/v2/", HTTP_HOST="evil.example.net").status_code == 400  # elsewhere: Django's rule


def test_a_timestamp_batch_that_fails_is_written_with_the_next(served_world, monkeypatch):
    """PostgreSQL cuts the writer's connection (a restart, a failover) just as it writes: the batch is kept and written
    once the connection is back, a build's first boot included (written once, never again)."""
    import psycopg

    from dock2box import timestamps

    if timestamps._gathered.thread is not None:  # a writer thread of an earlier test ends (writes are at once here)
        timestamps._gathered.thread.join(timeout=10)
    now = timezone.now()
    host, build = served_world.idle_host, served_world.build
    with timestamps._gathered.lock:
        timestamps._gathered.rows = {
            (Host, "last_seen", False): {host.pk: now},
            (Build, "first_boot", True): {build.pk: now},
        }
    settings_dict, ready = connection.settings_dict, timestamps.close_old_connections

    def cut_after_ready() -> None:  # the writer's connection, as it is about to write
        ready()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        with psycopg.connect(host=settings_dict["HOST"], port=settings_dict["PORT"], user=settings_dict["USER"],
                             dbname=settings_dict["NAME"], autocommit=True) as killer:  # fmt: skip
            killer.execute("SELECT pg_terminate_backend(%s)", [pid])

    monkeypatch.setattr(timestamps, "close_old_connections", cut_after_ready)
    timestamps.timestamps_write_waiting()  # fails: the connection is gone
    assert timestamps._gathered.rows  # kept
    monkeypatch.setattr(timestamps, "close_old_connections", ready)
    timestamps.timestamps_write_waiting()  # a new connection
    assert Host.objects.get(pk=host.pk).last_seen == now
    assert Build.objects.get(pk=build.pk).first_boot == now


def test_gunicorn_stopped_by_sigterm_writes_what_waits(transactional_db, tmp_path):
    """Timestamps waiting in a web worker (flushed every 30 s here) are written when gunicorn is stopped."""
    import signal
    import urllib.request

    from tests.services import Gunicorn

    world = make_world()
    db = connection.settings_dict
    server = Gunicorn(tmp_path, {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DOCK2BOX_WEB_WORKERS": "2", "DOCK2BOX_TIMESTAMP_FLUSH": "30",
        "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/13", "DOCK2BOX_PUBLIC_URL": "",
    }).start()  # fmt: skip
    try:
        urllib.request.urlopen(f"{server.url}/ipxe?mac={IDLE_MAC}", timeout=10).read()
        assert Host.objects.get(pk=world.idle_host.pk).last_seen is None  # waiting in the worker
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
    finally:
        server.stop()
    assert Host.objects.get(pk=world.idle_host.pk).last_seen is not None


def test_a_statements_own_error_leaves_the_sessions_prepared_statements(served_world):
    """A statement that fails for its own reasons (a value PostgreSQL cannot compare) leaves the session's prepared
    statements alone and the session preparing."""
    from django.db import DataError

    from provisioning.builds.selectors import interface_for_boot

    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            return cursor.fetchone()[0]

    prepared()  # the session is open: the boot look-up is prepared in it
    assert interface_for_boot(mac=IDLE_MAC) is not None
    before = prepared()
    assert before >= 1
    with pytest.raises(DataError):
        interface_for_boot(mac="52:54:00:00:00:0\x00")
    assert prepared() == before
    with CaptureQueriesContext(connection) as queries:
        assert interface_for_boot(mac=IDLE_MAC) is not None
    assert [query["sql"].split()[0] for query in queries] == ["EXECUTE"]

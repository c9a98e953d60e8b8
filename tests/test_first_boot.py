"""The installed system's first-boot report: the one-shot credential, the host deployed with its digest and its
power-on-to-booted time, a host not reporting in time, and the report script the installer drops in, run for real
with curl and with bash alone against a live portal."""

import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from hosts.models import Host
from provisioning.builds.services import host_cancel_build, host_enter_build
from provisioning.models import Build
from tests.boot_world import BUILD_MAC, make_world

DIGEST = "sha256:" + "ab" * 32
REPORT = {"digest": DIGEST, "machine_id": "0123456789abcdef0123456789abcdef", "kernel": "6.1.0-28-cloud-amd64",
          "uptime": 11.52}  # fmt: skip


@pytest.fixture
def world(db, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    return make_world()


def install(client, *, done: bool = True) -> tuple[str, str]:
    """A PXE boot in build mode and an install up to `done` (or to the bootloader); the config's two credentials."""
    text = client.get(f"/ipxe?mac={BUILD_MAC}").content.decode()
    token = re.search(r"/config/([A-Za-z0-9_-]+)", text).group(1)
    config = client.get(f"/config/{token}").content.decode()
    booted_path = re.search(r"^D2B_BOOTED_URL='https?://[^/]+(/booted/[A-Za-z0-9_-]+)'$", config, flags=re.M).group(1)
    for stage in ["config", "disk", "image", "configure", "bootloader", *(["done"] if done else [])]:
        response = client.post(f"/config/{token}/events", {"stage": stage, "progress": 100}, "application/json")
        assert response.status_code == 201
    return token, booted_path


def test_the_first_boot_report_deploys_the_host_once(client, world):
    _, path = install(client)
    host = Host.objects.get(pk=world.build_host.pk)
    assert (host.status, host.deployed_digest, host.installed is not None) == ("installed", "", True)

    response = client.post(path, REPORT, "application/json")
    assert response.status_code == 201, response.content
    host.refresh_from_db()
    build = Build.objects.get(pk=world.build.pk)
    assert (host.status, host.deployed_digest) == ("deployed", DIGEST)
    assert (build.booted_digest, build.report_token, build.booted is not None) == (DIGEST, None, True)
    assert host.boot_seconds == int((build.booted - build.first_boot).total_seconds())
    event = build.events.get(stage="booted")
    assert "machine-id 0123456789abcdef0123456789abcdef" in event.message and "6.1.0-28-cloud-amd64" in event.message

    again = client.post(path, REPORT, "application/json")  # the credential is used up
    assert again.status_code == 403
    assert build.events.filter(stage="booted").count() == 1


def test_power_on_is_the_builds_first_pxe_boot(client, world):
    before = timezone.now()
    client.get(f"/ipxe?mac={BUILD_MAC}")
    first = Build.objects.get(pk=world.build.pk).first_boot
    assert first is not None and first >= before
    client.get(f"/ipxe?mac={BUILD_MAC}")  # a second boot (a retry) keeps the first
    assert Build.objects.get(pk=world.build.pk).first_boot == first


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"digest": "sha256:xyz"}, "digest"),
        ({"digest": 'sha256:"; reboot'}, "digest"),
        ({"machine_id": "../../etc"}, "machine_id"),
        ({"kernel": "6.1 $(id)"}, "kernel"),
        ({"uptime": "soon"}, "uptime"),
        ({"uptime": -1}, "uptime"),
        ({"uptime": True}, "uptime"),
        ({"digest": ["a"]}, "digest"),
    ],
)
def test_a_bad_report_is_400_and_keeps_the_credential(client, world, body, field):
    _, path = install(client)
    response = client.post(path, body, "application/json")
    assert response.status_code == 400 and field in response.json()
    assert client.post(path, "[1]", "application/json").status_code == 400
    assert client.post(path, "{", "application/json").status_code == 400
    assert Host.objects.get(pk=world.build_host.pk).status == "installed"
    assert client.post(path, REPORT, "application/json").status_code == 201


def test_a_report_without_a_valid_credential_is_refused(client, world):
    token, path = install(client, done=False)
    assert client.post("/booted/nope", REPORT, "application/json").status_code == 403
    assert client.post(f"/booted/{token}", REPORT, "application/json").status_code == 403  # the build token is not it
    assert client.get(path).status_code == 405


def test_a_failed_or_cancelled_build_voids_the_credential(client, world):
    text = client.get(f"/ipxe?mac={BUILD_MAC}").content.decode()
    token = re.search(r"/config/([A-Za-z0-9_-]+)", text).group(1)
    config = client.get(f"/config/{token}").content.decode()
    path = "/booted/" + re.search(r"/booted/([A-Za-z0-9_-]+)", config).group(1)
    client.post(f"/config/{token}/events", {"stage": "failed", "message": "disk"}, "application/json")
    assert client.post(path, REPORT, "application/json").status_code == 403

    build = host_enter_build(host=Host.objects.get(pk=world.build_host.pk))
    host_cancel_build(host=build.host)
    assert Build.objects.get(pk=build.pk).report_token is None


def test_a_new_build_voids_the_previous_installs_credential(client, world):
    _, path = install(client)
    host_enter_build(host=Host.objects.get(pk=world.build_host.pk))
    assert client.post(path, REPORT, "application/json").status_code == 403
    assert Host.objects.get(pk=world.build_host.pk).build


def test_a_report_after_a_lost_done_confirms_the_install(client, world):
    """The `done` was lost and the disk booted without a PXE boot in between: the booted system is the proof."""
    _, path = install(client, done=False)
    assert client.post(path, REPORT, "application/json").status_code == 201
    build = Build.objects.get(pk=world.build.pk)
    host = Host.objects.get(pk=world.build_host.pk)
    assert (build.state, build.token, host.build, host.status) == ("done", None, False, "deployed")
    assert "choose --default local" in client.get(f"/ipxe?mac={BUILD_MAC}").content.decode()


def test_an_unconfirmed_install_that_reports_is_deployed(client, world):
    _, path = install(client, done=False)
    client.get(f"/ipxe?mac={BUILD_MAC}")  # booted again without done: closed unconfirmed, sent to its disk
    assert Host.objects.get(pk=world.build_host.pk).status == "unconfirmed"
    assert client.post(path, REPORT, "application/json").status_code == 201
    assert Host.objects.get(pk=world.build_host.pk).status == "deployed"


def test_a_host_that_does_not_report_in_time_is_shown_not_reporting(client, world, admin_client, settings):
    install(client)
    host_url = f"/api/v2/hosts/{world.build_host.pk}/"
    assert admin_client.get(host_url).json()["deployment"] == "awaiting its first boot"
    assert "awaiting its first boot" in admin_client.get("/admin/hosts/host/").content.decode()

    settings.DOCK2BOX_FIRST_BOOT_TIMEOUT = 60
    Host.objects.filter(pk=world.build_host.pk).update(installed=timezone.now() - timedelta(seconds=61))
    data = admin_client.get(host_url).json()
    assert (data["status"], data["deployment"]) == ("installed", "not reporting")
    assert "not reporting" in admin_client.get("/admin/hosts/host/").content.decode()


def test_the_api_and_the_admin_show_the_deployed_digest_and_boot_time(client, world, admin_client):
    _, path = install(client)
    client.post(path, REPORT, "application/json")
    data = admin_client.get(f"/api/v2/hosts/{world.build_host.pk}/").json()
    assert (data["status"], data["deployment"], data["deployed_digest"]) == ("deployed", "deployed", DIGEST)
    assert isinstance(data["boot_seconds"], int)
    build = admin_client.get(f"/api/v2/builds/{world.build.pk}/").json()
    assert build["booted_digest"] == DIGEST and build["booted"]
    page = admin_client.get("/admin/hosts/host/").content.decode()
    assert f'title="{DIGEST}"' in page and "after power-on" in page


# The report script, run for real ---------------------------------------------------------------------------------


def report_script(tmp_path: Path, url: str, digest: str) -> tuple[Path, Path]:
    """The installer's first-boot files in a scratch root; the script's absolute paths moved into it."""
    from d2b_installer import firstboot

    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/lib/systemd/systemd").write_text("")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/bash").write_text("")
    firstboot.install(root, url, digest)
    assert (root / firstboot.WANTS).is_symlink() and (
        root / "var/lib/dock2box/booted.url"
    ).stat().st_mode & 0o777 == 0o600
    unit = (root / firstboot.UNIT).read_text()
    assert "ExecStart=/usr/lib/dock2box/report-booted" in unit and "WantedBy=multi-user.target" in unit
    script = (root / firstboot.SCRIPT).read_text()
    assert script.startswith("#!/usr/bin/bash\n")
    script = script.replace("/var/lib/dock2box", str(root / "var/lib/dock2box")).replace(
        "/etc/systemd/", str(root / "etc/systemd") + "/"
    )
    (root / "etc/machine-id").write_text("fedcba9876543210fedcba9876543210\n")
    script = script.replace("/etc/machine-id", str(root / "etc/machine-id"))
    (tmp_path / "report").write_text(script)
    return root, tmp_path / "report"


@pytest.mark.parametrize("client_tool", ["curl", "bash"])
def test_the_report_script_reaches_the_portal_and_disables_itself(
    live_server, transactional_db, settings, tmp_path, client_tool
):
    from d2b_installer import firstboot

    settings.DOCK2BOX_PUBLIC_URL = live_server.url
    world = make_world()
    _, path = install(Client())
    root, script = report_script(tmp_path, live_server.url + path, DIGEST)
    environment = dict(os.environ)
    if client_tool == "bash":  # no curl, no wget: only bash's /dev/tcp
        tools = tmp_path / "bin"
        tools.mkdir()
        for tool in ["cat", "tr", "cut", "uname", "rm", "sleep", "printf"]:
            os.symlink(subprocess.check_output(["which", tool], text=True).strip(), tools / tool)
        environment["PATH"] = str(tools)
    done = subprocess.run(["/bin/bash", str(script)], env=environment, capture_output=True, text=True, timeout=60)
    assert "first boot reported" in done.stdout, done.stdout + done.stderr
    host = Host.objects.get(pk=world.build_host.pk)
    assert (host.status, host.deployed_digest) == ("deployed", DIGEST)
    assert (
        "machine-id fedcba9876543210fedcba9876543210" in Build.objects.get(host=host).events.get(stage="booted").message
    )
    assert not (root / "var/lib/dock2box/booted.url").exists() and not (root / firstboot.WANTS).is_symlink()


def test_the_installer_refuses_a_report_url_or_digest_that_could_break_the_files(tmp_path):
    from d2b_installer import firstboot

    for url, digest in [("http://p/booted/x'$(id)", ""), ("ftp://p/x", ""), ("http://p/booted/x", "sha256:nothex")]:
        with pytest.raises(RuntimeError):
            firstboot.install(tmp_path, url, digest)


def test_an_image_without_systemd_gets_no_report_unit(tmp_path):
    from d2b_installer import firstboot

    firstboot.install(tmp_path, "http://p/booted/x", DIGEST)
    assert not (tmp_path / firstboot.UNIT).exists()

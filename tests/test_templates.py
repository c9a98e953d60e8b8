"""The stock templates under templates/config/: what the real tools that read them accept, for a host with several
interfaces (static and DHCP) and the hostile values of the security review, which stay inert."""

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from django.urls import reverse
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from hosts.services import site_update
from images.services import image_update
from provisioning.builds.configs import host_config_render
from provisioning.builds.templating import debconf_line
from provisioning.catalogue.services import boot_template_create
from tests import factories
from tests.boot_world import BUILD_MAC, IDLE_MAC, make_world
from tests.conftest import grant
from tests.services import ROOT
from tests.test_secrets import ED25519, HOSTILE_KEY, SHA512

pytestmark = pytest.mark.django_db
KOPTS = "a=(b) !c *d ?e [f] ^g %h ~i"
ALL_KOPTS = f"console=ttyS0 quiet {KOPTS}"  # the boot image's, the image's, the host's
KEYS = [HOSTILE_KEY, ED25519]
EVENTS = "http://portal.example.com/config/{token}/events"


@pytest.fixture
def world(settings, django_capture_on_commit_callbacks):
    """The boot world's build host with four interfaces: static (subnet), DHCP, static (own netmask), static (second
    subnet without a gateway); its site's secrets are the hostile ones."""
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com"
    world = make_world()
    with django_capture_on_commit_callbacks(execute=True):
        site_update(
            site=world.site,
            data={
                "root_password_hash": "!" + SHA512,
                "ssh_authorized_keys": "\n".join(KEYS),
                "ntp_servers": "10.0.0.4",
            },
        )
    storage = factories.SubnetFactory(site=world.site, network="10.9.0.0/16", gateway=None)
    factories.InterfaceFactory(host=world.build_host, name="eth2", mac="52:54:00:00:01:02", ip="192.168.7.9",
                               netmask="255.255.255.128", primary=False)  # fmt: skip
    factories.InterfaceFactory(host=world.build_host, name="eth3", mac="52:54:00:00:01:03", ip="10.9.1.1",
                               subnet=storage, primary=False)  # fmt: skip
    world.build_host.kopts = KOPTS
    world.build_host.save()
    return world


@pytest.fixture
def token(client, world) -> str:
    text = client.get(f"/ipxe?mac={BUILD_MAC}").content.decode()
    return text.split("/config/", 1)[1].split()[0]


def fetch(client, token: str, fmt: str) -> str:
    response = client.get(f"/config/{token}?format={fmt}")
    assert response.status_code == 200, response.content
    assert response["X-Dock2Box-Template"] == f"templates/config/{STOCK[fmt]} (stock)"
    return response.content.decode()


STOCK = {"kickstart": "kickstart.ks", "preseed": "preseed.cfg", "cloud-init": "cloud-init.yaml"}
# What each interface of the build host must come out as: MAC → (DHCP, address/prefix, gateway).
NICS = {
    BUILD_MAC: (False, "10.0.0.11/24", "10.0.0.1"),
    "52:54:00:00:01:01": (True, "", ""),
    "52:54:00:00:01:02": (False, "192.168.7.9/25", ""),
    "52:54:00:00:01:03": (False, "10.9.1.1/16", ""),
}


def test_cloud_init_passes_cloud_inits_own_schema_check_and_keeps_values_inert(client, token, tmp_path):
    text = fetch(client, token, "cloud-init")
    (tmp_path / "user-data").write_text(text)
    check = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(tmp_path / "user-data")], capture_output=True, text=True
    )
    assert check.returncode == 0 and "Valid cloud-config" in check.stdout, check.stdout + check.stderr
    config = yaml.safe_load(text)
    assert set(config) == {"hostname", "fqdn", "prefer_fqdn_over_hostname", "manage_etc_hosts", "disable_root",
                           "ssh_pwauth", "ssh_authorized_keys", "chpasswd", "ntp", "write_files", "runcmd"}  # fmt: skip
    assert (config["hostname"], config["fqdn"]) == ("build", "build.ams1.example.com")
    assert config["ssh_authorized_keys"] == KEYS
    assert config["chpasswd"]["users"] == [{"name": "root", "type": "hash", "password": "!" + SHA512}]
    assert config["ntp"]["servers"] == ["10.0.0.4"]
    networks = {}
    for entry in config["write_files"]:
        sections: dict[str, list[str]] = {}
        for line in entry["content"].splitlines():
            if line.startswith("["):
                section = sections.setdefault(line, [])
            elif line:
                section.append(line)
        networks[sections["[Match]"][0].removeprefix("MACAddress=")] = sections["[Network]"]
    assert set(networks) == set(NICS)
    for mac, (dhcp, address, gateway) in NICS.items():
        expected = ["DHCP=yes"] if dhcp else [f"Address={address}"] + ([f"Gateway={gateway}"] if gateway else [])
        assert networks[mac] == [*expected, "DNS=10.0.0.2", "DNS=10.0.0.3", "Domains=ams1.example.com"], mac


def kickstart_parsed(text: str, tmp_path: Path):
    (tmp_path / "ks.cfg").write_text(text)
    validator = Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "ksvalidator"
    check = subprocess.run([str(validator), "-e", str(tmp_path / "ks.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    handler = makeVersion()
    KickstartParser(handler).readKickstartFromString(text)
    return handler


def test_kickstart_passes_pykickstarts_validator_and_keeps_values_inert(client, world, token, tmp_path):
    handler = kickstart_parsed(fetch(client, token, "kickstart"), tmp_path)
    assert (handler.rootpw.password, handler.rootpw.isCrypted) == ("!" + SHA512, True)
    assert handler.bootloader.appendLine == ALL_KOPTS
    assert [server.ntp_server for server in handler.timesource.dataList()] == ["10.0.0.4"]
    devices = {nd.device: nd for nd in handler.network.network if nd.device}
    assert set(devices) == set(NICS)
    for mac, (dhcp, address, gateway) in NICS.items():
        nd = devices[mac]
        assert nd.bootProto == ("dhcp" if dhcp else "static"), mac
        if not dhcp:
            assert (nd.ip, nd.gateway or "") == (address.split("/")[0], gateway), mac
            assert nd.nameserver == "10.0.0.2,10.0.0.3"
        assert bool(nd.activate) == (mac == BUILD_MAC)
    assert [nd.hostname for nd in handler.network.network if nd.hostname] == ["build.ams1.example.com"]
    # a docker image: its bootable container by digest from the site's registry
    assert handler.ostreecontainer.url == f"registry.example.com:5000/dock2box/debian@sha256:{'b' * 64}"
    # %post runs as anaconda runs it (in the installed root, moved here), `curl` recording its arguments
    root = tmp_path / "root"
    script = handler.scripts[0].script.replace("/root/", f"{root}/")
    subprocess.run(["sh", "-c", script], check=True, env=recording(tmp_path, "curl"))
    assert (root / ".ssh" / "authorized_keys").read_text() == "\n".join(KEYS) + "\n"
    assert_reported_done(tmp_path / "curl", token)


def test_a_file_image_and_a_host_without_site_interfaces_or_image(client, world, tmp_path, admin_client):
    tarball = world.idle_host.image
    tarball.versions.update(digest="sha256:" + "c" * 64)
    response = admin_client.get(reverse("admin:hosts_host_config_preview", args=[world.idle_host.pk, "kickstart"]))
    handler = kickstart_parsed(response.content.decode(), tmp_path)
    assert handler.liveimg.url == "http://files.example.com/tarball-1/image.tar.xz"
    assert handler.liveimg.checksum == "c" * 64
    assert handler.rootpw.password == "********"  # a preview: the secrets masked
    bare = factories.HostFactory(fqdn="bare.example.com", site=None, image=None)
    response = admin_client.get(reverse("admin:hosts_host_config_preview", args=[bare.pk, "kickstart"]))
    handler = kickstart_parsed(response.content.decode(), tmp_path)
    assert "No image resolves for this host" in response.content.decode()
    assert (handler.liveimg.url, handler.ostreecontainer.url) == (None, None)
    for kind, check in [("cloud-init", ["cloud-init", "schema", "--config-file"]),
                        ("preseed", ["debconf-set-selections", "--checkonly"])]:  # fmt: skip
        response = admin_client.get(reverse("admin:hosts_host_config_preview", args=[bare.pk, kind]))
        assert response.status_code == 200
        (tmp_path / kind).write_bytes(response.content)
        subprocess.run([*check, str(tmp_path / kind)], check=True, capture_output=True)


def recording(tmp_path: Path, command: str) -> dict[str, str]:
    """An environment where `command` writes its arguments, one per line, to tmp_path/command instead of running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / command).write_text(f'#!/bin/sh\nfor arg; do printf "%s\\n" "$arg"; done > {tmp_path}/{command}\n')
    (bin_dir / command).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def assert_reported_done(arguments: Path, token: str) -> None:
    words = arguments.read_text().splitlines()
    assert words[-1] == EVENTS.format(token=token)
    assert json.loads(words[words.index("-d") + 1])["stage"] == "done"


def late_command(text: str) -> str:
    """The preseed's late_command with its continuation lines joined, as debconf-set-selections reads it."""
    joined = text.replace("\\\n", "")
    return next(line for line in joined.splitlines() if line.startswith("d-i preseed/late_command string "))


def test_preseed_passes_debconfs_check_and_its_late_command_writes_keys_and_interfaces(client, token, tmp_path):
    text = fetch(client, token, "preseed")
    (tmp_path / "preseed.cfg").write_text(text)
    check = subprocess.run(["debconf-set-selections", "--checkonly", str(tmp_path / "preseed.cfg")],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0 and not check.stderr, check.stderr
    answers = dict(line.split(" ", 1)[1].split(" ", 1) for line in text.replace("\\\n", "").splitlines()
                   if line and not line.startswith("#"))  # fmt: skip
    assert answers["netcfg/get_ipaddress"] == "string 10.0.0.11"
    assert answers["netcfg/get_nameservers"] == "string 10.0.0.2 10.0.0.3"
    assert answers["passwd/root-password-crypted"] == "password !" + SHA512
    assert answers["debian-installer/add-kernel-opts"] == "string " + ALL_KOPTS
    # late_command runs as debian-installer runs it (/target moved here), `in-target` recording its arguments
    target = tmp_path / "target"
    (target / "etc" / "network").mkdir(parents=True)
    (target / "etc" / "network" / "interfaces").write_text("auto lo\niface lo inet loopback\n")
    command = late_command(text).split(" string ", 1)[1].replace("/target", str(target))
    subprocess.run(["sh", "-c", command], check=True, env=recording(tmp_path, "in-target"))
    assert (target / "root" / ".ssh" / "authorized_keys").read_text() == "\n".join(KEYS) + "\n"
    links = sorted((target / "etc" / "systemd" / "network").iterdir())
    assert [path.read_text() for path in links] == [
        f"[Match]\nMACAddress={mac}\n[Link]\nName={name}\n"
        for mac, name in [("52:54:00:00:01:01", "eth1"), ("52:54:00:00:01:02", "eth2"), ("52:54:00:00:01:03", "eth3")]
    ]
    assert (
        (target / "etc" / "network" / "interfaces")
        .read_text()
        .endswith(
            "\nallow-hotplug eth1\niface eth1 inet dhcp\n"
            "\nallow-hotplug eth2\niface eth2 inet static\n    address 192.168.7.9/25\n"
            "\nallow-hotplug eth3\niface eth3 inet static\n    address 10.9.1.1/16\n"
        )
    )
    assert (tmp_path / "in-target").read_text().startswith("curl\n")
    assert_reported_done(tmp_path / "in-target", token)


def test_a_preseed_answer_with_a_line_break_stops_the_render(client, world, token, django_capture_on_commit_callbacks):
    assert debconf_line("10.0.0.1") == "10.0.0.1"
    with pytest.raises(ValueError, match="line break"):
        debconf_line("x\nd-i preseed/late_command string reboot")
    with django_capture_on_commit_callbacks(execute=True):  # the boot path's catalogue learns of it on commit
        image_update(image=world.debian, data={"main_script": "echo one\necho two"})
        boot_template_create(
            data={"name": "p", "kind": "preseed", "content": "d-i x/y string {{ main_script|debconf }}\n"}
        )
    response = client.get(f"/config/{token}?format=preseed")
    assert response.status_code == 422 and "line break" in response.content.decode(), response.content
    assert response["X-Dock2Box-Template"] == "p (default)"


def test_the_preview_says_which_template_applies_and_from_where(
    admin_client, world, user, token_client, django_capture_on_commit_callbacks
):
    host = world.build_host
    page = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk])).content.decode()
    assert "kickstart</a>: template templates/config/kickstart.ks (stock)" in page
    with django_capture_on_commit_callbacks(execute=True):
        boot_template_create(data={"name": "rack", "kind": "cloud-init", "site": world.site, "content": "#x"})
    page = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk])).content.decode()
    assert "cloud-init</a>: template rack (site ams1)" in page
    grant(user, "hosts.view_host")
    response = token_client.get(f"/api/v2/hosts/{host.pk}/config/?type=cloud-init")
    assert (response.status_code, response["X-Dock2Box-Template"]) == (200, "rack (site ams1)")
    assert token_client.get(f"/api/v2/hosts/{host.pk}/config/?type=json").get("X-Dock2Box-Template") is None


def test_a_new_version_of_a_stock_file_image_still_resolves(world):
    """The stock kickstart names a file image's newest version; a version added later is the one it installs."""
    factories.ImageVersionFactory(image=world.idle_host.image, version="2", timestamp=datetime(2026, 4, 1, tzinfo=UTC))
    text = host_config_render(host=world.idle_host, build=None, fmt="kickstart", portal="http://p").text
    assert "liveimg --url='http://files.example.com/tarball-2/image.tar.xz'" in text
    assert f"network --device='{IDLE_MAC}'" in text


def test_the_documented_examples_render_and_pass_the_same_checks(
    client, world, token, tmp_path, django_capture_on_commit_callbacks
):
    section = (ROOT / "docs" / "templates.md").read_text().split("## One example per format", 1)[1]
    examples = dict(zip(["kickstart", "preseed", "cloud-init"], section.split("```")[1::2], strict=False))
    assert len(examples) == 3
    with django_capture_on_commit_callbacks(execute=True):
        for kind, content in examples.items():
            boot_template_create(data={"name": f"doc-{kind}", "kind": kind, "content": content.lstrip("\n")})
    kickstart_parsed(client.get(f"/config/{token}?format=kickstart").content.decode(), tmp_path)
    (tmp_path / "preseed.cfg").write_bytes(client.get(f"/config/{token}?format=preseed").content)
    subprocess.run(["debconf-set-selections", "--checkonly", str(tmp_path / "preseed.cfg")], check=True)
    (tmp_path / "user-data").write_bytes(client.get(f"/config/{token}?format=cloud-init").content)
    subprocess.run(["cloud-init", "schema", "--config-file", str(tmp_path / "user-data")], check=True)

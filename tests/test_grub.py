"""Secure Boot on the portal's side: GRUB configs making the same decisions as the iPXE scripts in GRUB's language,
the TFTP server relaying them, the first stages over HTTP, and what a build records and the portal refuses."""

import re
import shlex
import socket
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import tftpy
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hosts.services import host_update, site_update
from provisioning.boot.relay import relay_name, relay_url
from provisioning.boot.render import grub
from provisioning.builds.services import host_enter_build
from provisioning.catalogue.services import boot_defaults_update, pxe_menu_update
from provisioning.models import Build
from tests.boot_world import BUILD_MAC, IDLE_MAC, UNKNOWN_MAC, make_world
from tests.services import free_port, manage, stop, wait_until
from tests.test_boot import golden, grub_check, script
from tests.test_tftp import fetch


@pytest.fixture
def world(transactional_db, settings):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    return make_world()


# The two languages, read back into what a menu offers ------------------------------------------------------------


def ipxe_offer(text: str) -> dict:
    """What an iPXE menu script offers: title, timeout, default, the top entries in order, each image's versions,
    the install (kernel, initrd, installer arguments)."""
    lines = text.split("\n")
    offer: dict = {"entries": [], "versions": {}, "install": None, "notice": None}
    section = "top"
    for line in lines:
        if line.startswith(":"):
            section = line[1:]
        elif line.startswith("set menu-timeout "):
            offer["timeout"] = int(line.split()[-1]) // 1000
        elif line.startswith("menu -- ") and section == "start":
            offer["title"] = line.removeprefix("menu -- ")
        elif line.startswith("item --gap -- ") and section == "start":
            offer["entries"].append(("gap", line.removeprefix("item --gap -- ")))
        elif line.startswith("item ") and section == "start":
            _, key, label = line.split(" ", 2)
            offer["entries"].append((key, label))
        elif line.startswith("item i") and section.startswith("i"):
            _, key, label = line.split(" ", 2)
            offer["versions"].setdefault(section, []).append((key, label))
        elif line.startswith("choose --default ") and section == "start":
            offer["default"] = line.split()[2]
        elif line.startswith("kernel ") and section == "install":
            words = line.removesuffix(" || goto failed").split()
            offer["install"] = {"kernel": words[1], "args": _installer_args(words[2:])}
        elif line.startswith("initrd --name initrd ") and section == "install":
            offer["install"]["initrd"] = line.split()[3]
        elif line.startswith("chain --autofree ") and section.startswith("i"):
            offer["versions"].setdefault("picks", []).append(_picked(line.split()[2]))
    return offer


def grub_offer(text: str) -> dict:
    """The same, read from a GRUB menu config (relayed URLs read back)."""
    offer: dict = {"entries": [], "versions": {}, "install": None, "notice": None}
    menu = ""  # the submenu we are in
    entry = ""
    for raw in text.split("\n"):
        line = raw.strip()
        words = shlex.split(line) if line and not line.startswith("#") else []
        if not words:
            continue
        if words[0] == "set" and words[1].startswith("timeout=") and not menu:
            offer["timeout"] = int(words[1].split("=")[1])
        elif words[0] == "set" and words[1].startswith("default=") and not menu:
            offer["default"] = words[1].split("=")[1]
        elif words[0] == "submenu":
            menu = words[3]
            offer["entries"].append((menu, words[1]))
        elif words[0] == "menuentry":
            title, entry = words[1], words[3]
            if menu:
                if not entry.endswith("-gap"):
                    offer["versions"].setdefault(menu, []).append((entry, title))
            elif entry == "title":
                offer["title"] = title
            elif entry.startswith("gap-"):
                offer["entries"].append(("gap", title))
            else:
                offer["entries"].append((entry, title))
        elif words[0] == "linux" and entry == "install":
            offer["install"] = {"kernel": relay_url(words[1][1:]), "args": _installer_args(words[2:])}
        elif words[0] == "initrd" and entry == "install":
            offer["install"]["initrd"] = relay_url(words[1][1:])
        elif words[0] == "configfile" and menu:
            offer["versions"].setdefault("picks", []).append(_picked(relay_url(words[1][1:])))
        elif line == "}" and raw == "}":
            menu = ""
    return offer


def _picked(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["image"][0], query["version"][0]


def _installer_args(words: list[str]) -> list[str]:
    """The installer's arguments that carry a decision: the config and the options; the network facts each loader
    passes its own way (iPXE its DHCP lease, GRUB the boot NIC for the installer's own DHCP) are left out."""
    return [word for word in words if not word.startswith(("initrd=", "BOOTIF=", "d2b.ip=", "d2b.netmask=",
                                                            "d2b.gateway=", "d2b.dns=", "d2b.chain="))]  # fmt: skip


CASES = [
    "build",  # build mode: the install entry, the default
    "idle",  # installed: the local disk by default
    "unknown",  # an unknown MAC: discovery
    "default-item",  # a menu whose default is one of its items
    "picks",  # versions that install when picked
    "problem",  # build mode, but it cannot install: a notice and the local disk
]


def _urls(case: str, world, settings) -> tuple[str, str]:
    mac, query = {"build": (BUILD_MAC, "&ip=10.0.0.11"), "unknown": (UNKNOWN_MAC, "&ip=10.0.0.99")}.get(
        case, (IDLE_MAC, "&ip=10.0.0.12")
    )
    if case == "default-item":
        pxe_menu_update(menu=world.menu, data={"default_item": world.menu.items.get()})
    elif case == "picks":
        settings.DOCK2BOX_MENU_INSTALL = True
    elif case == "problem":
        host_enter_build(host=world.idle_host)
        boot_defaults_update(data={"boot_version": None})  # no boot environment now
    return f"/ipxe?mac={mac}&platform=efi{query}", f"/grub?mac={mac}{query}"


@pytest.mark.parametrize("case", CASES)
def test_every_boot_decision_renders_the_same_in_ipxe_and_grub(client, world, settings, case):
    ipxe_url, grub_url = _urls(case, world, settings)
    ipxe_text = script(client, ipxe_url)
    grub_text = script(client, grub_url)  # (GRUB's own parser accepts it)
    offer = ipxe_offer(ipxe_text)
    assert grub_offer(grub_text) == offer
    assert offer["entries"] and offer["title"] and offer["timeout"] and offer["default"]  # (what is compared is there)
    assert (offer["install"] is not None) == (case == "build")
    assert ("picks" in offer["versions"]) == (case == "picks")
    assert (offer["default"] == "m-shell") == (case == "default-item")
    assert ("in build mode, but" in grub_text) == (case == "problem")


# Goldens ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("known-build.grub", f"/grub?mac={BUILD_MAC}&ip=10.0.0.11"),
        ("known-idle.grub", f"/grub?mac={IDLE_MAC}&ip=10.0.0.12"),
        ("unknown.grub", f"/grub?mac={UNKNOWN_MAC}&ip=10.0.0.99"),
        ("bad-mac.grub", "/grub?mac=12345"),
    ],
)
def test_grub_configs_match_their_goldens(client, world, name, url):
    text = script(client, url)
    golden(name, re.sub(r"'/r/[A-Za-z0-9_.-]+'", lambda found: f"'/r/{relay_url(found[0][2:-1])}'", text))


def test_the_stage_config_asks_for_the_host_by_mac_and_else_boots_the_disk():
    text = grub.stage_config()
    grub_check(text)
    golden("stage.grub", text)


# Quoting and the relay -------------------------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40))
@hypothesis_settings(max_examples=300, deadline=None)
def test_any_value_is_one_grub_word_that_expands_nothing(value):
    quoted = grub.quote(value)
    assert shlex.split(quoted) == [value]  # POSIX single quotes: GRUB's


@pytest.mark.parametrize("value", ["x'; reboot; echo '", "$(reboot)", "${prefix}", "a}\nmenuentry b {", "--id x"])
def test_hostile_values_reach_grub_as_text(value):
    if "\n" in value:
        with pytest.raises(ValueError):
            grub.quote(value)
        return
    text = f"echo {grub.quote(value)}\nmenuentry {grub.quote(value)} --id 'x' {{\n  true\n}}\n"
    grub_check(text)
    assert shlex.split(text.split("\n")[0]) == ["echo", value]


def test_a_relayed_name_holds_only_what_the_portal_signed(settings):
    url = "http://portal.example.com:8000/files/boot/bootenv/1/kernel"
    name = relay_name(url)
    assert name.startswith("r/") and relay_url(name) == url
    assert relay_url(name[:-1] + ("A" if name[-1] != "A" else "B")) is None  # signature broken
    forged = relay_name(url).replace(name.split(".")[0], relay_name("http://169.254.169.254/").split(".")[0])
    assert relay_url(forged) is None  # another URL under this signature
    assert relay_url("r/garbage") is None and relay_url("grub/grub.cfg") is None
    settings.SECRET_KEY = "another portal's key"
    assert relay_url(name) is None


# The TFTP server relays what the portal answers GRUB -------------------------------------------------------------


@pytest.fixture
def relaying_tftp(live_server, world, tmp_path):
    """`manage.py tftpd` in front of the live portal, as the signed GRUB reaches both."""
    port = free_port(socket.SOCK_DGRAM)
    log = tmp_path / "tftpd.log"
    process = manage("tftpd", "--bind", "127.0.0.1", "--port", str(port), env={"DOCK2BOX_PUBLIC_URL": live_server.url},
                     stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    wait_until(lambda: "serving" in log.read_text(), what="tftpd")
    yield port, log
    stop(process)


def test_the_tftp_server_serves_the_signed_chain_and_relays_the_portals_grub_configs(
    client, live_server, settings, relaying_tftp, tmp_path, caplog
):
    port, log = relaying_tftp
    settings.DOCK2BOX_PUBLIC_URL = live_server.url  # (what the portal writes into its answers)
    for name, path in [("shimx64.efi", settings.DOCK2BOX_SHIM_EFI), ("grubx64.efi", settings.DOCK2BOX_GRUB_EFI)]:
        assert fetch(port, name, tmp_path, 1468) == Path(path).read_bytes()
    assert fetch(port, "grub/grub.cfg", tmp_path).decode() == grub.stage_config()

    text = fetch(port, f"grub/host-{BUILD_MAC}.cfg", tmp_path).decode()  # the name the stage config asks
    grub_check(text)
    assert "menuentry 'hostname: build.ams1.example.com'" in text and "set default='install'" in text
    assert (
        "boot mac=52:54:00:00:00:01 host=build.ams1.example.com platform=efi loader=grub outcome=build" in caplog.text
    )
    relayed = relay_name(f"{live_server.url}/boot.ipxe")
    assert fetch(port, relayed, tmp_path) == client.get("/boot.ipxe").content  # a URL the portal signed
    for refused in [relayed[:-2] + "xx", f"r/{relayed.split('.')[0][2:]}", "grub/host-zz.cfg", "grub/host-.cfg"]:
        with pytest.raises(tftpy.TftpShared.TftpException):
            fetch(port, refused, tmp_path)
    assert f"tftp file={relayed} client=127.0.0.1" in log.read_text()


def test_the_portal_serves_the_first_stages_by_fixed_name_for_http_boot(client, settings):
    shim = Path(settings.DOCK2BOX_SHIM_EFI).read_bytes()
    whole = client.get("/boot/shimx64.efi")
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == shim
    assert int(whole["Content-Length"]) == len(shim)
    head = client.head("/boot/grubx64.efi")  # firmware asks HEAD first
    assert head.status_code == 200 and int(head["Content-Length"]) == Path(settings.DOCK2BOX_GRUB_EFI).stat().st_size
    assert head.content == b""
    part = client.get("/boot/snponly.efi", HTTP_RANGE="bytes=100-199")
    assert (
        part.status_code == 206
        and b"".join(part.streaming_content) == (Path(settings.DOCK2BOX_IPXE_DIR, "snponly.efi").read_bytes()[100:200])
    )
    for name in ["grub.cfg", "..%2F..%2Fetc%2Fpasswd", "stage0.ipxe"]:
        assert client.get(f"/boot/{name}").status_code == 404


# What the portal records and refuses for Secure Boot -------------------------------------------------------------


def test_a_build_records_its_chain_and_secure_boot_as_the_installer_and_the_first_boot_say(client, world):
    token = re.search(r"/config/([A-Za-z0-9_-]+)", script(client, f"/grub?mac={BUILD_MAC}")).group(1)
    for bad, field in [("chain=pxelinux&secure_boot=1", "chain"), ("chain=ipxe&secure_boot=yes", "secure_boot"),
                       ("secure_boot=1", "chain")]:  # fmt: skip
        response = client.get(f"/config/{token}?{bad}")
        assert response.status_code == 400 and field in response.json(), (bad, response.content)
    assert Build.objects.filter(pk=world.build.pk, chain="", secure_boot=None).exists()  # nothing half-written
    config = client.get(f"/config/{token}?chain=shim-grub&secure_boot=1").content.decode()
    assert "D2B_SECURE_BOOT='false'" in config  # the host's setting (its firmware has it on all the same)
    assert Build.objects.filter(pk=world.build.pk, chain="shim-grub", secure_boot=True).exists()
    assert client.get(f"/config/{token}").status_code == 200  # (an installer that says nothing changes nothing)
    assert Build.objects.filter(pk=world.build.pk, chain="shim-grub", secure_boot=True).exists()
    assert client.get(f"/api/v2/builds/{world.build.pk}/").status_code in (401, 403)  # (the API needs a login)

    path = re.search(r"^D2B_BOOTED_URL='https?://[^/]+(/booted/[A-Za-z0-9_-]+)'$", config, flags=re.M).group(1)
    for stage in ["config", "disk", "image", "configure", "bootloader", "done"]:
        client.post(f"/config/{token}/events", {"stage": stage, "progress": 100}, "application/json")
    report = {"digest": "sha256:" + "ab" * 32, "machine_id": "0" * 32, "kernel": "6.1.0-28-amd64", "uptime": 9}
    refused = client.post(path, {**report, "secure_boot": "on"}, "application/json")
    assert refused.status_code == 400 and "secure_boot" in refused.json()
    assert client.post(path, {**report, "secure_boot": True}, "application/json").status_code == 201
    assert "Secure Boot on" in Build.objects.get(pk=world.build.pk).events.get(stage="booted").message


def test_secure_boot_is_the_hosts_else_its_sites_and_a_non_uefi_image_is_refused_before_build_mode(
    client, world, admin_client
):
    host = world.idle_host  # its image (a tarball) is not set to UEFI
    site_update(site=world.site, data={"secure_boot": True, "ssh_authorized_keys": ""})
    response = admin_client.post(f"/api/v2/hosts/{host.pk}/enter-build/")
    assert response.status_code == 400, response.content
    assert "Secure Boot, which needs UEFI, and image tarball is not set to UEFI" in response.content.decode()
    host_update(host=host, data={"secure_boot": False})  # its own setting wins over its site's
    assert admin_client.post(f"/api/v2/hosts/{host.pk}/enter-build/").status_code in (200, 201)
    data = admin_client.get(f"/api/v2/hosts/{host.pk}/").json()
    assert data["secure_boot"] is False and admin_client.get(f"/api/v2/sites/{world.site.pk}/").json()["secure_boot"]

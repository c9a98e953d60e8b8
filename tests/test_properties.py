"""Property tests (Hypothesis): any value the validators accept, in any field that reaches a rendered config or boot
script, comes out of every renderer such that the real parsers see exactly the keys, commands and lines they see for
a plain value, with the value intact: `sh` sourcing the env file, `json`, pykickstart, `debconf-set-selections
--checkonly` (and `sh` running the preseed's late_command and the kickstart's %post), `cloud-init schema` and YAML,
and iPXE's line structure. A value the validators refuse is not drawn again: the validators are what is tested for
those (tests/test_validators.py, tests/test_secrets.py)."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from dock2box.changes import generation_forget
from dock2box.validators import text_lines
from hosts.models import Host, Interface, Site
from images.models import Image, ImageVersion
from provisioning.builds.configs import host_config_document, host_config_render
from provisioning.catalogue.selectors import _memo
from provisioning.models import PxeMenu
from tests.boot_world import BUILD_MAC, IDLE_MAC, make_world
from tests.test_secrets import ED25519
from tests.test_templates import late_command, recording

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
PORTAL = "http://portal.example.com:8000"
# Characters each format gives a meaning to (shell, kickstart, YAML, debconf, iPXE), line breaks of every kind, C0
# and C1 controls, and letters beyond ASCII; mixed with any character Unicode has (NUL aside: no field can hold one).
MEANINGFUL = list(" \t\n\r\x0b\x0c\x1b\x7f\x85\u2028\u2029$`'\"\\;&|<>(){}[]#*?!~%^=,:/@+-_.é中")
TEXT = st.text(st.sampled_from(MEANINGFUL) | st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
PLAIN_KEY = " ".join(ED25519.split()[:2])

# field → (model, model field, a strategy for candidate values, how the value is put in place)
FIELDS: dict[str, tuple[Any, str, Any]] = {
    "kopts": (Host, "kopts", TEXT),
    "ssh key comment": (Site, "ssh_authorized_keys", TEXT.map(lambda comment: f"{PLAIN_KEY} {comment}")),
    "registry password": (Site, "registry_password", TEXT),
    "registry username": (Site, "registry_username", TEXT),
    "main script": (Image, "main_script", TEXT),
    "interface name": (Interface, "name", TEXT),
    "image version": (ImageVersion, "version", TEXT),
    "menu title": (PxeMenu, "title", TEXT),
}


def accepted(model: Any, name: str, value: str) -> bool:
    try:
        model._meta.get_field(name).clean(value, None)
    except ValidationError:
        return False
    return True


def sourced(text: str, tmp_path: Path) -> dict[str, str]:
    """The variables `sh` has after sourcing the env file (nothing else in its environment)."""
    (tmp_path / "config.env").write_text(text)
    result = subprocess.run(["env", "-i", "sh", "-c", f"set -a; . {tmp_path / 'config.env'}; env -0"],
                            capture_output=True, check=True)  # fmt: skip
    pairs = (entry.split("=", 1) for entry in result.stdout.decode().split("\x00") if entry.startswith("D2B_"))
    return dict(pairs)  # type: ignore[arg-type]


def shape(value: Any) -> Any:
    """A parsed document's structure without its values: its keys, recursively, and its lists' lengths."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def kickstart(text: str) -> Any:
    handler = makeVersion()
    KickstartParser(handler).readKickstartFromString(text)
    return handler


def kickstart_shape(handler: Any) -> Any:
    seen = sorted(name for name, command in handler.commands.items() if getattr(command, "seen", False))
    return (
        seen,
        [(script.type, len(script.script.splitlines())) for script in handler.scripts],
        len(handler.network.network),
    )


def preseed_answers(text: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "preseed.cfg").write_text(text)
    check = subprocess.run(["debconf-set-selections", "--checkonly", str(tmp_path / "preseed.cfg")],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0 and not check.stderr, check.stderr
    lines = [line for line in text.replace("\\\n", "").split("\n") if line and not line.startswith("#")]
    return dict(line.split(" ", 2)[1:] for line in lines)  # type: ignore[misc]


def ipxe_shape(text: str) -> list[str]:
    """iPXE reads a script line by line (LF): each line's command is its first word."""
    return [line.split(" ", 1)[0] for line in text.split("\n")]


class Rendered:
    """Everything one state of the world renders to, parsed by the real parsers."""

    def __init__(self, client: Any, build: Any, tmp_path: Path) -> None:
        _memo.clear()
        generation_forget()
        host = Host.objects.get(pk=build.host_id)
        self.document = json.loads(json.dumps(host_config_document(host=host, build=build, portal=PORTAL)))
        self.texts = {}
        for fmt in ("env", "json", "kickstart", "preseed", "cloud-init"):
            rendered = host_config_render(host=host, build=build, fmt=fmt, portal=PORTAL)
            assert rendered.status == 200, rendered.text
            self.texts[fmt] = rendered.text
        self.tmp_path = tmp_path
        self.env = sourced(self.texts["env"], tmp_path)
        self.json = json.loads(self.texts["json"])
        self.kickstart = kickstart(self.texts["kickstart"])
        self.preseed = preseed_answers(self.texts["preseed"], tmp_path)
        self.cloud_init = yaml.safe_load(self.texts["cloud-init"])
        self.ipxe = {mac: client.get("/ipxe", {"mac": mac}).content.decode() for mac in (BUILD_MAC, IDLE_MAC)}

    def shapes(self) -> Any:
        return (sorted(self.env), shape(self.json), kickstart_shape(self.kickstart), sorted(self.preseed),
                shape(self.cloud_init), {mac: ipxe_shape(text) for mac, text in self.ipxe.items()})  # fmt: skip

    def cloud_init_valid(self) -> bool:
        (self.tmp_path / "user-data").write_text(self.texts["cloud-init"])
        check = subprocess.run(["cloud-init", "schema", "--config-file", str(self.tmp_path / "user-data")],
                               capture_output=True, text=True)  # fmt: skip
        return check.returncode == 0 and "Valid cloud-config" in check.stdout

    def run(self, kind: str) -> Path:
        """The kickstart's %post or the preseed's late_command run by `sh` in a fresh root; that root."""
        root = self.tmp_path / kind
        subprocess.run(["rm", "-rf", str(root)], check=True)
        (root / "etc" / "network").mkdir(parents=True)
        (root / "etc" / "network" / "interfaces").write_text("")
        if kind == "kickstart":
            command, fake = self.kickstart.scripts[0].script.replace("/root/", f"{root}/root/"), "curl"
        else:
            command, fake = (
                late_command(self.texts["preseed"]).split(" string ", 1)[1].replace("/target", str(root)),
                "in-target",
            )
        subprocess.run(["sh", "-c", command], check=True, env=recording(self.tmp_path, fake))
        return root


@pytest.fixture
def world(settings):
    settings.DOCK2BOX_PUBLIC_URL = PORTAL
    world = make_world()
    world.targets = {
        Host: world.build_host, Site: world.site, Image: world.debian, PxeMenu: world.menu,
        Interface: Interface.objects.get(mac="52:54:00:00:01:01"),
        ImageVersion: ImageVersion.objects.get(image=world.debian, version="b"),
    }  # fmt: skip
    world.baseline = {field: getattr(world.targets[model], name) for field, (model, name, _) in FIELDS.items()}
    world.baseline["ssh key comment"] = f"{PLAIN_KEY} ops@example.com"
    return world


def put(world: Any, field: str, value: str) -> None:
    model, name, _ = FIELDS[field]
    model.objects.filter(pk=world.targets[model].pk).update(**{name: value})


TOLERATED = [HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much, HealthCheck.too_slow]


@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=TOLERATED)
@given(data=st.data())
def test_any_accepted_value_renders_intact_everywhere_and_changes_no_structure(data, world, client, tmp_path):
    field = data.draw(st.sampled_from(sorted(FIELDS)), label="field")
    model, name, candidates = FIELDS[field]
    value = data.draw(candidates.filter(lambda candidate: accepted(model, name, candidate)), label="value")
    for other, plain in world.baseline.items():
        put(world, other, plain)
    if not hasattr(world, "plain"):
        world.plain = Rendered(client, world.build, tmp_path)
    put(world, field, value)
    rendered = Rendered(client, world.build, tmp_path)
    document, keys = rendered.document, rendered.document["secrets"]["ssh_authorized_keys"]

    # The value is in the document as given (kernel options are words: joined by single spaces).
    expected = {
        "kopts": lambda: " ".join(value.split()) in document["kopts"],
        "ssh key comment": lambda: keys == [line for line in text_lines(value) if line.strip()],
        "registry password": lambda: document["secrets"]["registry_password"] == value,
        "registry username": lambda: document["secrets"]["registry_username"] == value,
        "main script": lambda: document["main_script"] == value,
        "interface name": lambda: value in [nic["name"] for nic in document["interfaces"]],
        "image version": lambda: document["image_version"] == value,
        "menu title": lambda: f"menu -- {value}" in rendered.ipxe[IDLE_MAC].split("\n"),
    }
    assert expected[field](), (field, value)
    # No parser sees a key, command, line or script the plain value does not give.
    assert rendered.shapes() == world.plain.shapes()
    # Each parser sees the document's values intact.
    assert rendered.json == document
    env = rendered.env
    assert (env["D2B_KOPTS"], env["D2B_MAIN_SCRIPT"], env["D2B_IMAGE_VERSION"]) == (
        document["kopts"], document["main_script"], document["image_version"])  # fmt: skip
    assert (env["D2B_REGISTRY_USERNAME"], env["D2B_REGISTRY_PASSWORD"]) == (
        document["secrets"]["registry_username"], document["secrets"]["registry_password"])  # fmt: skip
    assert env["D2B_SSH_AUTHORIZED_KEYS"] == "\n".join(keys)
    assert [env[f"D2B_IF{number}_NAME"] for number in range(len(document["interfaces"]))] == [
        nic["name"] for nic in document["interfaces"]]  # fmt: skip
    assert rendered.kickstart.bootloader.appendLine == document["kopts"]
    assert rendered.preseed["debian-installer/add-kernel-opts"] == "string " + document["kopts"]
    assert rendered.cloud_init["ssh_authorized_keys"] == keys
    assert rendered.cloud_init["hostname"] == document["hostname"]
    for kind in ("kickstart", "preseed"):
        assert (rendered.run(kind) / "root" / ".ssh" / "authorized_keys").read_text() == "".join(
            f"{key}\n" for key in keys
        )
    links = sorted((rendered.tmp_path / "preseed" / "etc" / "systemd" / "network").iterdir())
    assert [path.read_text().split("Name=")[1] for path in links] == [
        f"{nic['name']}\n" for nic in document["interfaces"] if nic["mac"] != BUILD_MAC]  # fmt: skip
    kernel = next(line for line in rendered.ipxe[BUILD_MAC].split("\n") if line.startswith("kernel "))
    assert kernel.endswith(" " + document["kopts"]) or f" {document['kopts']} " in kernel
    if field in ("ssh key comment", "image version"):  # the ones cloud-init's own check reads or that name a file
        assert rendered.cloud_init_valid()

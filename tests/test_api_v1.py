"""`/api/v1`: the original REST contract, as a client written for the original Dock2Box uses it."""

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from dock2box.models import OutboxEntry
from hosts.models import Host
from provisioning.compat.schemas import SCHEMAS
from provisioning.models import Build
from tests.conftest import grant

pytestmark = pytest.mark.django_db
NIC = {"gw": "10.192.61.254", "hwaddr": "00:50:56:3d:db:d4", "ip": "10.192.61.96", "netmask": "255.255.254.0"}
TEST1 = {
    "build": "false", "debug": "false", "gpt": "false", "kexec": "false", "kopts": "",
    "image": "centos-7.1-x86_64", "version": "latest", "site": "emea2",
    "interface": {"default": NIC, "eth0": NIC},
}  # fmt: skip


@pytest.fixture(autouse=True)
def anonymous_reads(settings):
    """The original answered reads without credentials, and a client written for it reads that way."""
    settings.DOCK2BOX_V1_ANONYMOUS_READ = True


@pytest.fixture
def writer(db):
    from django.contrib.auth.models import User

    user = User.objects.create_user(username="script")
    models = [("hosts", "host"), ("hosts", "site"), ("hosts", "subnet"), ("images", "image"), ("hosts", "interface")]
    actions = ("add", "change", "delete", "view")
    grant(user, *[f"{app}.{action}_{model}" for app, model in models for action in actions])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def put(client, url, document):
    return client.put(url, json.dumps(document), content_type="application/json")


@pytest.fixture
def catalogue(writer):
    assert (
        put(writer, "/api/v1/sites/emea2", {"domain": "example.com", "file_server": "http://files"}).status_code == 200
    )
    boot = {"type": "boot", "versions": {"1": {"timestamp": "20160101-000000", "main_script": ""}}}
    assert put(writer, "/api/v1/images/d2b-boot", boot).status_code == 200  # kernel and initrd on the file server
    image = {"type": "file", "bootstrap_image": "d2b-boot",
             "versions": {"20160201-120000": {"timestamp": "20160201-120000", "main_script": ""}}}  # fmt: skip
    assert put(writer, "/api/v1/images/centos-7.1-x86_64", image).status_code == 200
    return writer


def test_the_original_example_host_round_trip(catalogue, admin_client):
    response = put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    assert response.status_code == 200, response.content
    assert response.json() == TEST1
    assert APIClient().get("/api/v1/hosts/test1.example.com").json() == TEST1
    host = Host.objects.get(fqdn="test1.example.com")
    assert host.interfaces.count() == 1 and host.interfaces.get().primary
    v2 = admin_client.get("/api/v2/hosts/?hostname=test1").json()["results"][0]
    assert [nic["mac"] for nic in v2["interfaces"]] == ["00:50:56:3d:db:d4"]
    assert "test1.example.com" in admin_client.get("/admin/hosts/host/").content.decode()

    patched = catalogue.patch(
        "/api/v1/hosts/test1.example.com",
        json.dumps([{"op": "replace", "path": "/build", "value": "true"}]),
        content_type="application/json",
    )
    assert patched.status_code == 200 and patched.json()["build"] == "true"
    assert Build.objects.filter(host=host, state="pending").exists()

    deleted = catalogue.delete("/api/v1/hosts/test1.example.com")
    assert deleted.status_code == 200 and deleted.json()["build"] == "true"
    assert catalogue.get("/api/v1/hosts/test1.example.com").status_code == 404


def test_collections_table_envelope_and_indent(catalogue):
    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    assert list(APIClient().get("/api/v1/hosts").json()) == ["test1.example.com"]
    table = APIClient().get("/api/v1/hosts?table=true").json()
    assert table == [{**TEST1, "hostname": "test1.example.com"}]
    assert APIClient().get("/api/v1/sites?table=true").json()[0]["site"] == "emea2"
    assert APIClient().get("/api/v1/subnets").json() == {}
    assert APIClient().get("/api/v1/hwaddr?table=true").json() == [
        {"hostname": "test1.example.com", "interface": "eth0", "hwaddr": "00:50:56:3d:db:d4"}
    ]
    assert APIClient().get("/api/v1/images/centos-7.1-x86_64/versions?table=true").json()[0]["version"] == (
        "20160201-120000"
    )
    enveloped = APIClient().get("/api/v1/hosts/test1.example.com?envelope=true").json()
    assert enveloped == {"code": 200, "data": TEST1}
    missing = APIClient().get("/api/v1/hosts/nope.example.com?envelope=true")
    assert missing.status_code == 404 and missing.json()["code"] == 404 and isinstance(missing.json()["data"], list)
    assert b"\n" not in APIClient().get("/api/v1/hosts?indent=false").content
    assert b"\n  " in APIClient().get("/api/v1/hosts").content


@pytest.mark.parametrize(
    "url",
    ["/api/v1/hosts/x.example.com", "/api/v1/images/x", "/api/v1/sites/x1", "/api/v1/subnets/10.0.0.0-24",
     "/api/v1/hwaddr/00:50:56:00:00:01", "/api/v1/hosts/x.example.com/interfaces/eth0",
     "/api/v1/images/x/versions/1"],
)  # fmt: skip
def test_missing_resources_are_404(url):
    assert APIClient().get(url).status_code == 404


def test_a_put_replaces_so_a_removed_field_is_gone(catalogue):
    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    smaller = {key: value for key, value in TEST1.items() if key not in ("gpt", "kexec")}
    assert put(catalogue, "/api/v1/hosts/test1.example.com", smaller).json() == smaller
    assert Host.objects.get().gpt is None
    Host.objects.update(secure_boot=True)  # a setting the original never had: not shown here, kept by a PUT
    assert "secure_boot" not in put(catalogue, "/api/v1/hosts/test1.example.com", smaller).json()
    assert Host.objects.get().secure_boot is True


def test_json_patch_add_remove_replace_test(catalogue):
    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)

    def patch(operations):
        return catalogue.patch(
            "/api/v1/hosts/test1.example.com", json.dumps(operations), content_type="application/json"
        )

    assert patch([{"op": "add", "path": "/volmgt", "value": "lvm"}]).json()["volmgt"] == "lvm"
    assert "gpt" not in patch([{"op": "remove", "path": "/gpt"}]).json()
    done = patch(
        [{"op": "test", "path": "/site", "value": "emea2"}, {"op": "replace", "path": "/kopts", "value": "quiet"}]
    )
    assert done.json()["kopts"] == "quiet"
    failing = patch(
        [{"op": "test", "path": "/site", "value": "apac1"}, {"op": "replace", "path": "/kopts", "value": "x"}]
    )
    assert failing.status_code == 400 and isinstance(failing.json(), list)
    assert Host.objects.get().kopts == "quiet"
    assert patch({"op": "replace"}).status_code == 400
    assert patch([{"op": "replace", "path": "/nothing/here", "value": "1"}]).status_code == 400


@pytest.mark.parametrize(
    ("url", "document", "says"),
    [
        ("/api/v1/hosts/a.example.com", {**TEST1, "colour": "red"}, "/host/a.example.com: Additional properties"),
        (
            "/api/v1/hosts/a.example.com",
            {**TEST1, "site": "Bad Site"},
            "/host/a.example.com/site: does not match pattern",
        ),
        ("/api/v1/hosts/a.example.com", {**TEST1, "build": "yes"}, "/host/a.example.com/build: must be one of"),
        ("/api/v1/hosts/a.example.com", {"interface": {"eth0": {"hwaddr": "zz"}}}, "interface/eth0/hwaddr: does not"),
        ("/api/v1/images/x", {"type": "rpm"}, "/image/x/type: must be one of"),
        ("/api/v1/images/x", {"colour": "red"}, "Additional properties"),
        ("/api/v1/sites/x1", {"domain": "a", "colour": "red"}, "Additional properties"),
        ("/api/v1/subnets/10.0.0.0-24", {"site": "Bad"}, "/subnets/10.0.0.0-24/site: does not match pattern"),
        ("/api/v1/subnets/10.0.0.0-24", {"site": "ok1", "colour": "x"}, "Additional properties"),
        ("/api/v1/hwaddr/00:50:56:00:00:01", {"hostname": "a.example.com", "interface": "Eth 0"}, "does not match"),
        ("/api/v1/hwaddr/00:50:56:00:00:01", {"hostname": "a", "interface": "eth0", "x": "1"}, "Additional properties"),
        ("/api/v1/hosts/test1.example.com/interfaces/eth1", {"ip": "10.0.0.300"}, "eth1/ip: is not a valid ipv4"),
        ("/api/v1/hosts/test1.example.com/interfaces/eth1", {"mtu": "9000"}, "Additional properties"),
        ("/api/v1/images/centos-7.1-x86_64/versions/2", {"timestamp": "x", "sha": "1"}, "Additional properties"),
        ("/api/v1/hosts/b.example.com", {**TEST1, "site": "nowhere"}, "/host/b.example.com/site: no site 'nowhere'"),
        ("/api/v1/hosts/b.example.com", {**TEST1, "image": "nope"}, "/host/b.example.com/image: no image 'nope'"),
        ("/api/v1/hosts/b.example.com", {**TEST1, "kopts": "a; reboot"}, "/host/b.example.com/kopts: Contains ';'"),
        ("/api/v1/images/y", {"type": "file", "bootstrap_image": "nope"}, "no boot image version nope"),
    ],
)
def test_bad_documents_are_400_naming_path_and_reason(catalogue, url, document, says):
    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    response = put(catalogue, url, document)
    assert response.status_code == 400, response.content
    assert any(says in message for message in response.json()), response.json()


ORIGINAL_SCHEMAS = [
    "types", "host", "interface", "image", "image_version", "hwaddr", "subnet", "site", "global", "default",
    "menu_item", "all_hosts", "all_images", "all_interfaces", "all_image_versions", "all_hwaddr", "all_subnets",
    "all_sites", "root", "all",
]  # fmt: skip


def test_every_schema_of_the_original_is_served_and_closed():
    assert sorted(SCHEMAS) == sorted(ORIGINAL_SCHEMAS)
    for name in SCHEMAS:
        schema = APIClient().get(f"/schemas/{name}.json").json()
        assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
        assert schema["additionalProperties"] is False
    assert APIClient().get("/schemas/nothing.json").status_code == 404


def _served_validator(name):
    """A draft-04 validator of a schema as a client gets it: every `$ref` resolved from what /schemas/ serves."""
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    served = {f"{each}.json": APIClient().get(f"/schemas/{each}.json").json() for each in ORIGINAL_SCHEMAS}
    registry = Registry().with_resources(
        (uri, Resource.from_contents(schema, default_specification=DRAFT4)) for uri, schema in served.items()
    )
    return Draft4Validator(served[f"{name}.json"], registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER)


def test_an_exported_tree_and_the_v1_collections_validate_against_the_served_schemas(catalogue, settings):
    from provisioning.mirror.sync import export_tree
    from tests.boot_world import make_world

    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    make_world()  # sites, subnets, every image type, hosts in build mode and not, a menu with items
    tree = export_tree()
    assert {"host", "hwaddr", "image", "subnets", "sites", "default"} <= set(tree)
    assert tree["default"]["menu_items"], "the world's menu items are in the tree"
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in _served_validator("root").iter_errors(tree)]
    assert errors == []
    collections = {
        name: catalogue.get(f"/api/v1/{name}").json() for name in ("hosts", "hwaddr", "images", "sites", "subnets")
    }
    for name, documents in collections.items():
        assert documents, name
        assert list(_served_validator(f"all_{name}").iter_errors(documents)) == [], name
    assert list(_served_validator("all").iter_errors(collections)) == []
    broken = {**tree, "host": {"test1.example.com": {**tree["host"]["test1.example.com"], "gpt": "maybe"}}}
    assert [error.validator for error in _served_validator("root").iter_errors(broken)] == ["enum"]


def test_oversize_and_malformed_bodies(catalogue):
    assert put(catalogue, "/api/v1/sites/big1", {"domain": "x" * (1024 * 1024)}).status_code == 413
    bad = catalogue.put("/api/v1/sites/emea2", "{not json", content_type="application/json")
    assert bad.status_code == 400 and isinstance(bad.json(), list)


def test_anonymous_reads_are_off_by_default(catalogue, settings, writer):
    from dock2box import settings as project_settings

    assert project_settings.DOCK2BOX_V1_ANONYMOUS_READ is False  # the default, with no environment variable
    settings.DOCK2BOX_V1_ANONYMOUS_READ = False
    put(writer, "/api/v1/hosts/test1.example.com", TEST1)
    for url in ["/api/v1/hosts?table=true", "/api/v1/hosts/test1.example.com", "/api/v1/hwaddr", "/api/v1/sites"]:
        response = APIClient().get(url)
        assert response.status_code == 401 and "00:50:56" not in response.content.decode(), url
        assert writer.get(url).status_code == 200, url


def test_anonymous_reads_but_not_writes(catalogue, settings):
    anonymous = APIClient()
    assert anonymous.get("/api/v1/sites/emea2").status_code == 200
    assert put(anonymous, "/api/v1/sites/emea3", {"domain": "x.example.com"}).status_code == 401
    assert anonymous.delete("/api/v1/sites/emea2").status_code == 401
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert put(anonymous, "/api/v1/sites/emea3", {"domain": "x.example.com"}).status_code == 401
    settings.DOCK2BOX_V1_ANONYMOUS_READ = False
    assert APIClient().get("/api/v1/sites").status_code == 401


def test_writes_need_the_model_permission(db):
    from django.contrib.auth.models import User

    user = User.objects.create_user(username="reader")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert put(client, "/api/v1/sites/emea3", {"domain": "x.example.com"}).status_code == 403


def test_interfaces_and_versions_subresources(catalogue):
    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    eth1 = {"hwaddr": "00:50:56:00:00:02", "ip": "10.192.61.97", "netmask": "255.255.254.0"}
    assert put(catalogue, "/api/v1/hosts/test1.example.com/interfaces/eth1", eth1).json() == eth1
    assert Host.objects.get().interfaces.count() == 2
    moved = {**NIC, "ip": "10.192.61.98"}
    assert put(catalogue, "/api/v1/hosts/test1.example.com/interfaces/default", moved).json() == moved
    document = APIClient().get("/api/v1/hosts/test1.example.com").json()
    assert document["interface"]["eth0"] == moved == document["interface"]["default"]
    assert catalogue.delete("/api/v1/hosts/test1.example.com/interfaces/eth1").json() == eth1
    assert Host.objects.get().interfaces.count() == 1
    version = {"timestamp": "20160301-000000", "main_script": "echo hi"}
    assert put(catalogue, "/api/v1/images/centos-7.1-x86_64/versions/v2", version).json() == version
    assert APIClient().get("/api/v1/images/centos-7.1-x86_64").json()["version"] == "v2"
    assert catalogue.delete("/api/v1/images/centos-7.1-x86_64/versions/v2").json() == version


def test_hwaddr_follows_the_interfaces(catalogue):
    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    same = {"hostname": "test1.example.com", "interface": "eth0"}
    assert put(catalogue, "/api/v1/hwaddr/00:50:56:3D:DB:D4", same).json() == same
    other = put(catalogue, "/api/v1/hwaddr/00:50:56:3d:db:d4", {"hostname": "x.example.com", "interface": "eth0"})
    assert other.status_code == 400 and "change the host instead" in other.json()[0]
    assert catalogue.delete("/api/v1/hwaddr/00:50:56:3d:db:d4").status_code == 400


def test_a_v1_write_shows_up_in_etcd_in_the_original_layout(catalogue, etcd):
    from provisioning.mirror import sync

    put(catalogue, "/api/v1/hosts/test1.example.com", TEST1)
    assert OutboxEntry.objects.filter(document="host/test1.example.com").exists()
    sync.outbox_drain(wait=True)
    keys = sync.mirror_stores()[0].read(["/host/test1.example.com/", "/hwaddr/"])
    assert keys["/host/test1.example.com/interface/default/hwaddr"] == "00:50:56:3d:db:d4"
    assert keys["/host/test1.example.com/image"] == "centos-7.1-x86_64"
    assert keys["/hwaddr/00:50:56:3d:db:d4/hostname"] == "test1.example.com"


def test_build_mode_is_refused_over_v1_for_a_host_that_cannot_install(writer):
    put(writer, "/api/v1/sites/emea2", {"domain": "example.com"})
    image = {"type": "file", "versions": {"20160201-120000": {"timestamp": "20160201-120000", "main_script": ""}}}
    put(writer, "/api/v1/images/centos-7.1-x86_64", image)  # no boot environment, no file server
    response = put(writer, "/api/v1/hosts/test1.example.com", {**TEST1, "build": "true"})
    assert response.status_code == 400
    assert "Build mode refused for test1.example.com" in response.json()[0]
    assert not Host.objects.filter(fqdn="test1.example.com").exists()  # all or nothing

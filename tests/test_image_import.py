"""`manage.py image_import` against a real Docker Engine API: podman's (`podman system service`), with the docker SDK.

The test image is the layers of test_layers.py (whiteouts, an opaque directory, a hard link, set-uid, owners) as an
OCI layout pulled into podman's storage — less its hard link to a lower layer's file, which podman's storage refuses
(test_layers.py checks that one against umoci); the real one is the Debian nginx application buildah built from the
shipped recipes (tests/debian_images.py). No fake engine is left.
"""

import hashlib
import io
import tarfile
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from images.models import ImageVersion
from tests import factories
from tests.registry import oci_image
from tests.services import free_port
from tests.test_layers import LAYERS, tar

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def podman(containers, tmp_path_factory):
    """The engine's address, with the test layers as `localhost/test/base:v1` in its storage."""
    layout = tmp_path_factory.mktemp("oci") / "layout"
    layers = [[(info, data) for info, data in entries if info.name != "usr/bin/second"] for entries in LAYERS]
    oci_image(layout, "v1", [tar(entries) for entries in layers])
    image = containers.podman("pull", "-q", f"oci:{layout}:v1").strip()
    containers.podman("tag", image, "localhost/test/base:v1")
    with containers.engine() as url:
        yield url


@pytest.fixture
def engine(podman, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", podman)


def test_an_engine_image_becomes_a_flattened_file_image(engine, db, settings, tmp_path, client):
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("image_import", "test/base:v1", "--name", "base", "--image-version", "1", stdout=StringIO())
    version = ImageVersion.objects.get(image__name="base", version="1")
    data = version.file.read()
    assert version.image.type == "file"
    assert (version.digest, version.size) == (f"sha256:{hashlib.sha256(data).hexdigest()}", len(data))
    with tarfile.open(fileobj=io.BytesIO(data)) as flat:
        members = {member.name: member for member in flat.getmembers()}
        assert flat.extractfile("etc/os-release").read() == b"ID=top\n"
    assert "etc/shadow" not in members and "home/old" not in members
    assert sorted(name for name in members if name.startswith("var/cache/")) == ["var/cache/new"]
    assert members["opt/thing"].isfile() and members["srv/file"].isdir()
    assert (members["home/user"].uid, members["home/user"].gid) == (1000, 100)
    assert members["usr/bin/tool"].mode & 0o4000
    assert {members["usr/bin/hard"].type, members["usr/bin/tool"].type} & {tarfile.LNKTYPE}

    served = client.get("/files/images/base/1/file", HTTP_RANGE="bytes=0-9")
    assert served.status_code == 206 and b"".join(served.streaming_content) == data[:10]


def test_the_host_config_points_at_the_stored_tarball(engine, db, settings, tmp_path, client):
    from provisioning.builds.services import host_enter_build

    settings.MEDIA_ROOT, settings.DOCK2BOX_PUBLIC_URL = tmp_path / "media", "http://portal.example.com"
    call_command("image_import", "test/base:v1", "--name", "base", "--image-version", "1", stdout=StringIO())
    version = ImageVersion.objects.get()
    build = host_enter_build(host=factories.InstallableHostFactory(image=version.image))
    config = client.get(f"/config/{build.token}?format=json").json()
    assert config["image_source"] == {"digest": version.digest, "size": version.size,
                                      "url": "http://portal.example.com/files/images/base/1/file"}  # fmt: skip


def test_no_engine_or_no_image_is_a_clear_error(monkeypatch, db, engine):
    with pytest.raises(CommandError, match="No Docker engine or no image missing/image:1"):
        call_command("image_import", "missing/image:1", "--name", "base", "--image-version", "1")
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(CommandError, match="No Docker engine"):
        call_command("image_import", "test/base:v1", "--name", "base", "--image-version", "1")


def test_a_debian_image_built_from_a_dockerfile_becomes_a_file_image(engine, bookworm, db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("image_import", "localhost/web:12", "--name", "web-file", "--image-version", "12", stdout=StringIO())
    version = ImageVersion.objects.get(image__name="web-file", version="12")
    with tarfile.open(fileobj=version.file.open("rb"), mode="r|gz") as flat:
        names = {member.name: member for member in flat}
    assert {"etc/debian_version", "usr/sbin/nginx", "var/www/html/index.html", "etc/ssh/sshd_config"} <= set(names)
    assert any(name.startswith("boot/vmlinuz-") for name in names) and "var/lib/apt/lists/lock" not in names

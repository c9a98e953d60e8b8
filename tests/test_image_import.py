"""`manage.py image_import` against a stand-in Docker Engine API.

No Docker engine runs here: `FakeEngine` is a fake of the Engine API (ping, version, image inspect, image save) on
loopback, serving a `docker save` archive the test builds from the layers of test_layers.py.
"""

import hashlib
import http.server
import io
import json
import tarfile
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from images.models import ImageVersion
from tests import factories
from tests.services import free_port
from tests.test_layers import LAYERS, tar

pytestmark = pytest.mark.slow


def docker_save(reference: str) -> bytes:
    archive = io.BytesIO()
    layers = [tar(entries) for entries in LAYERS]
    with tarfile.open(fileobj=archive, mode="w") as out:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))

        paths = []
        for layer in layers:
            path = f"{hashlib.sha256(layer).hexdigest()}/layer.tar"
            add(path, layer)
            paths.append(path)
        add("config.json", b"{}")
        add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [reference], "Layers": paths}]).encode())
    return archive.getvalue()


class FakeEngine:
    """A fake Docker Engine API: only what `docker.from_env().images.get(...).save()` asks."""

    def __init__(self, reference: str) -> None:
        saved = docker_save(reference)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path.endswith("/version"):
                    body = json.dumps({"ApiVersion": "1.43", "MinAPIVersion": "1.12", "Version": "24.0.0"}).encode()
                elif path.endswith("/_ping"):
                    body = b"OK"
                elif path.endswith("/json") and "/images/" in path:
                    body = json.dumps({"Id": "sha256:" + "a" * 64, "RepoTags": [reference]}).encode()
                elif path.endswith("/get") and "/images/" in path:
                    body = saved
                else:
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b'{"message": "no such thing"}')
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"tcp://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def engine(monkeypatch):
    fake = FakeEngine("test/base:v1")
    monkeypatch.setenv("DOCKER_HOST", fake.url)
    yield fake
    fake.server.shutdown()


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
    assert {members["usr/bin/second"].type, members["usr/bin/tool"].type} & {tarfile.LNKTYPE}

    served = client.get("/files/images/base/1/file", HTTP_RANGE="bytes=0-9")
    assert served.status_code == 206 and b"".join(served.streaming_content) == data[:10]


def test_the_host_config_points_at_the_stored_tarball(engine, db, settings, tmp_path, client):
    from provisioning.services import host_enter_build

    settings.MEDIA_ROOT, settings.DOCK2BOX_PUBLIC_URL = tmp_path / "media", "http://portal.example.com"
    call_command("image_import", "test/base:v1", "--name", "base", "--image-version", "1", stdout=StringIO())
    version = ImageVersion.objects.get()
    build = host_enter_build(host=factories.InstallableHostFactory(image=version.image))
    config = client.get(f"/config/{build.token}?format=json").json()
    assert config["image_source"] == {"digest": version.digest, "size": version.size,
                                      "url": "http://portal.example.com/files/images/base/1/file"}  # fmt: skip


def test_no_engine_or_no_image_is_a_clear_error(monkeypatch, db):
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(CommandError, match="No Docker engine"):
        call_command("image_import", "test/base:v1", "--name", "base", "--image-version", "1")

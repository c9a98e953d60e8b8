"""Resolving docker image versions in a real registry: digest, size and layers; anonymous and basic auth."""

import hashlib
import http.server
import threading

import pytest
from rest_framework.test import APIClient

from hosts.services import image_version_resolve_from_registry
from images.registry import RegistryClient, RegistryError
from tests import factories
from tests.conftest import grant
from tests.registry import Registry, oci_layout

pytestmark = pytest.mark.slow


@pytest.fixture
def anonymous_registry(tmp_path, settings):
    registry = Registry(tmp_path)
    settings.DOCK2BOX_INSECURE_REGISTRIES = [registry.address]
    yield registry
    registry.stop()


@pytest.fixture
def private_registry(tmp_path, settings):
    registry = Registry(tmp_path, user="puller", password="s3cret-pull")
    settings.DOCK2BOX_INSECURE_REGISTRIES = ["127.0.0.1"]
    yield registry
    registry.stop()


def test_a_docker_schema2_manifest_resolves_to_its_digest_size_and_layers(anonymous_registry, tmp_path):
    built = oci_layout(tmp_path / "layout", "v1", {"etc/os-release": b"ID=test\n"})
    digest = anonymous_registry.push(tmp_path / "layout", "v1", "test/base", docker_format=True)
    resolved = RegistryClient(anonymous_registry.url).resolve("test/base", "v1")
    assert resolved.digest == digest
    assert resolved.size == built["config"]["size"] + built["layers"][0]["size"]
    assert [layer["digest"] for layer in resolved.layers] == [built["layers"][0]["digest"]]


def test_an_index_behind_basic_auth_resolves_to_its_amd64_image(private_registry, tmp_path):
    built = oci_layout(tmp_path / "layout", "v2", {"hello": b"world\n"}, as_index=True)
    digest = private_registry.push(tmp_path / "layout", "v2", "test/indexed")
    client = RegistryClient(private_registry.url, username="puller", password="s3cret-pull")
    resolved = client.resolve("test/indexed", "v2")
    assert resolved.digest == digest
    assert resolved.layers == [{"digest": built["layers"][0]["digest"], "size": built["layers"][0]["size"],
                                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]  # fmt: skip
    with pytest.raises(RegistryError, match="401"):
        RegistryClient(private_registry.url, username="puller", password="wrong").resolve("test/indexed", "v2")
    with pytest.raises(RegistryError, match="user name and password"):
        RegistryClient(private_registry.url).resolve("test/indexed", "v2")


def test_blobs_are_pulled_and_a_corrupted_one_fails_by_its_digest(anonymous_registry, tmp_path):
    built = oci_layout(tmp_path / "layout", "v1", {"etc/os-release": b"ID=test\n"})
    anonymous_registry.push(tmp_path / "layout", "v1", "test/pull")
    client = RegistryClient(anonymous_registry.url)
    manifest = client.platform_manifest("test/pull", "v1")
    layer = manifest["layers"][0]["digest"]
    assert layer == built["layers"][0]["digest"]
    pulled: list[int] = []
    stream = client.blob("test/pull", layer, pulled.append)
    content = stream.read(-1)
    stream.finish()
    assert sum(pulled) == len(content) == built["layers"][0]["size"]

    hexdigest = layer.split(":")[1]
    data = next(anonymous_registry.workdir.rglob(f"blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"))
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0xFF
    data.write_bytes(bytes(content))
    stream = client.blob("test/pull", layer)
    stream.read(-1)
    with pytest.raises(RegistryError, match=f"{layer} is corrupt"):
        stream.finish()
    with pytest.raises(RegistryError, match=r"404 .*manifest unknown"):
        client.platform_manifest("test/pull", "sha256:" + "0" * 64)


def test_a_version_is_resolved_with_its_sites_registry_and_credentials(
    private_registry, tmp_path, db, user, django_capture_on_commit_callbacks
):
    oci_layout(tmp_path / "layout", "v3", {"a": b"a\n"})
    digest = private_registry.push(tmp_path / "layout", "v3", "dock2box/debian")
    factories.SiteFactory(
        registry=private_registry.address, registry_username="puller", registry_password="s3cret-pull"
    )
    version = factories.ImageVersionFactory(
        image=factories.ImageFactory(name="debian", repository="dock2box/debian"), version="v3"
    )
    client = APIClient()
    client.force_authenticate(user)
    url = f"/api/v2/image-versions/{version.pk}/resolve/"
    assert client.post(url).status_code == 403
    grant(user, "images.change_imageversion", "images.view_imageversion")
    client.force_authenticate(type(user).objects.get(pk=user.pk))  # a fresh object: permissions are cached per object
    with django_capture_on_commit_callbacks(execute=True):  # queued on commit; in-process here (no broker)
        assert client.post(url).status_code == 202
    version.refresh_from_db()
    assert (version.digest, len(version.layers)) == (digest, 1)
    assert version.size > 0
    missing = factories.ImageVersionFactory(image=version.image, version="nope")
    with pytest.raises(RegistryError, match="404"):
        image_version_resolve_from_registry(version_id=missing.pk)


def test_bearer_tokens_from_the_registrys_token_service(tmp_path, settings):
    from tests.registry import TokenServer

    tokens = TokenServer(tmp_path, user="puller", password="s3cret-pull")
    registry = Registry(tmp_path, user="puller", password="s3cret-pull", tokens=tokens)
    settings.DOCK2BOX_INSECURE_REGISTRIES = [registry.address]
    try:
        oci_layout(tmp_path / "layout", "v4", {"b": b"b\n"})
        digest = registry.push(tmp_path / "layout", "v4", "test/bearer")
        client = RegistryClient(registry.url, username="puller", password="s3cret-pull")
        assert client.resolve("test/bearer", "v4").digest == digest
        with pytest.raises(RegistryError, match="401"):
            RegistryClient(registry.url).resolve("test/bearer", "v4")  # an anonymous token grants nothing here
    finally:
        registry.stop()
        tokens.stop()


def test_a_blob_redirected_to_storage_is_fetched_without_the_registrys_credentials():
    """Registries send blobs from object storage with signed URLs, which refuse a second authentication."""
    blob = b"layer bytes" * 100
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    seen: dict[str, str | None] = {}

    class Storage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["storage"] = self.headers.get("Authorization")
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def log_message(self, *args):
            pass

    storage = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storage)

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if not self.headers.get("Authorization"):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
            else:
                seen["registry"] = self.headers["Authorization"]
                self.send_response(307)
                self.send_header("Location", f"http://127.0.0.1:{storage.server_address[1]}/signed?sig=x")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    registry = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    for server in (storage, registry):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = RegistryClient(f"http://127.0.0.1:{registry.server_address[1]}", username="u", password="p")
        stream = client.blob("lab/x", digest)
        assert stream.read(-1) == blob
        stream.finish()
    finally:
        storage.shutdown()
        registry.shutdown()
    assert seen == {"registry": "Basic dTpw", "storage": None}


def test_credentials_never_go_in_clear_to_a_token_service_on_another_host():
    """A registry (or whoever answers as one) names its token service: plain HTTP on another host gets no password,
    the registry's own host or any host over HTTPS does."""
    seen: list[str | None] = []

    class Tokens(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b'{"token": "anonymous"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    tokens = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tokens)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    try:
        for realm, sent in [(f"http://localhost:{tokens.server_address[1]}/token", None),
                            (f"http://127.0.0.1:{tokens.server_address[1]}/token", "Basic dTpw")]:  # fmt: skip
            client = RegistryClient("http://127.0.0.1:5000", username="u", password="p")
            assert client._login(f'Bearer realm="{realm}",service="registry"', "http://127.0.0.1:5000/v2/") == (
                "Bearer anonymous"
            )
            assert seen.pop() == sent, realm
        assert RegistryClient("https://registry.example.com", username="u", password="p")._trusted(
            "https://auth.example.org/token"
        )
    finally:
        tokens.shutdown()

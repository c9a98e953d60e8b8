"""A real OCI registry (Debian's docker-registry) on loopback, and OCI images built with the standard library."""

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from tests.services import free_port, stop, wait_until

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def tar_of(files: dict[str, bytes]) -> bytes:
    """A tar of regular files (mode 0644, owned by root)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def oci_layout(layout: Path, tag: str, files: dict[str, bytes], *, as_index: bool = False) -> dict:
    """An OCI image layout with one layer holding `files`; with `as_index`, the tag names an index over it."""
    return oci_image(layout, tag, [tar_of(files)], as_index=as_index)


def oci_image(layout: Path, tag: str, layers: list[bytes], *, as_index: bool = False, level: int = 9) -> dict:
    """An OCI image layout of layer tars (base first, gzip at `level`); with `as_index`, the tag names an index."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"
                                                        for layer in layers]}}  # fmt: skip
    config_blob = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_blob(layout, json.dumps(config).encode()),
    }
    layer_blobs = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
         **_blob(layout, gzip.compress(layer, compresslevel=level, mtime=0))}
        for layer in layers
    ]  # fmt: skip
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_blob, "layers": layer_blobs}
    entry = {"mediaType": OCI_MANIFEST, **_blob(layout, json.dumps(manifest).encode()),
             "platform": {"architecture": "amd64", "os": "linux"}}  # fmt: skip
    if as_index:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
        entry = {"mediaType": OCI_INDEX, **_blob(layout, json.dumps(index).encode())}
    entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return {"config": config_blob, "layers": layer_blobs}


class Registry:
    """docker-registry on a free port, optionally with htpasswd (bcrypt) basic authentication."""

    def __init__(
        self, workdir: Path, *, user: str = "", password: str = "", tokens: "TokenServer | None" = None
    ) -> None:
        self.port, self.workdir, self.user, self.password = free_port(), workdir, user, password
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        auth = ""
        if tokens is not None:
            auth = (f"auth:\n  token:\n    realm: {tokens.realm}\n    service: dock2box-registry\n"
                    f"    issuer: dock2box-test\n    rootcertbundle: {tokens.bundle}\n")  # fmt: skip
        elif user:
            htpasswd = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, check=True, text=True)
            (workdir / "htpasswd").write_text(htpasswd.stdout)
            auth = f"auth:\n  htpasswd:\n    realm: dock2box-test\n    path: {workdir / 'htpasswd'}\n"
        (workdir / "config.yml").write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
            f"http:\n  addr: {self.address}\n{auth}"
        )
        log = (workdir / "registry.log").open("w")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(workdir / "config.yml")], stdout=log, stderr=log
        )

        def up() -> bool:
            import urllib.error
            import urllib.request

            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1)
            except urllib.error.HTTPError as error:
                return error.code == 401
            return True

        wait_until(up, what="docker-registry")

    def push(self, layout: Path, tag: str, repository: str, *, docker_format: bool = False) -> str:
        """Copy a layout's tag into the registry with skopeo; return the digest of the manifest stored there."""
        creds = ["--dest-creds", f"{self.user}:{self.password}"] if self.user else []
        form = ["--format", "v2s2"] if docker_format else []
        subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", *creds, *form, f"oci:{layout}:{tag}",
                        f"docker://{self.address}/{repository}:{tag}"], check=True, capture_output=True)  # fmt: skip
        creds = ["--creds", f"{self.user}:{self.password}"] if self.user else []
        source = f"docker://{self.address}/{repository}:{tag}"
        inspect = ["skopeo", "inspect", "--raw", "--tls-verify=false", *creds, source]
        raw = subprocess.run(inspect, check=True, capture_output=True).stdout
        return f"sha256:{hashlib.sha256(raw).hexdigest()}"

    def put_image(self, repository: str, tag: str, layers: list[tuple[str, bytes]]) -> str:
        """Upload blobs and an OCI manifest straight through the registry API — layers of any media type, which
        skopeo would not copy; returns the manifest's digest."""
        import base64
        import urllib.request

        headers = {}
        if self.user:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

        def upload(data: bytes) -> dict:
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
            start = urllib.request.Request(f"{self.url}/v2/{repository}/blobs/uploads/", method="POST", headers=headers)
            with urllib.request.urlopen(start) as response:
                location = response.headers["Location"]
            target = f"{location}{'&' if '?' in location else '?'}digest={digest}"
            target = target if target.startswith("http") else self.url + target
            put = urllib.request.Request(
                target, data=data, method="PUT", headers={**headers, "Content-Type": "application/octet-stream"}
            )
            urllib.request.urlopen(put).close()
            return {"digest": digest, "size": len(data)}

        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **upload(config.encode())},
            "layers": [{"mediaType": kind, **upload(data)} for kind, data in layers],
        }).encode()  # fmt: skip
        request = urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{tag}", data=manifest, method="PUT",
                                         headers={**headers, "Content-Type": OCI_MANIFEST})  # fmt: skip
        urllib.request.urlopen(request).close()
        return f"sha256:{hashlib.sha256(manifest).hexdigest()}"

    def stop(self) -> None:
        stop(self.process)


class TokenServer:
    """The bearer-token service a registry sends clients to (as Docker Hub does), signing JWTs with a test key."""

    def __init__(self, workdir: Path, *, user: str, password: str) -> None:
        import base64
        import datetime
        import http.server
        import threading
        import time
        import urllib.parse

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dock2box-test-token")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
        )  # fmt: skip
        self.bundle = workdir / "token.crt"
        self.bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        chain = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

        def b64url(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                access = []
                if self.headers.get("Authorization") == expected:
                    for scope in query.get("scope", []):
                        kind, repository, actions = scope.split(":")
                        access.append({"type": kind, "name": repository, "actions": actions.split(",")})
                issued = int(time.time())
                claims = {"iss": "dock2box-test", "sub": user, "aud": query.get("service", [""])[0], "jti": str(issued),
                          "iat": issued, "nbf": issued - 10, "exp": issued + 300, "access": access}  # fmt: skip
                header = {"alg": "RS256", "typ": "JWT", "x5c": chain}
                signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
                signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
                body = json.dumps({"token": f"{signed}.{b64url(signature)}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_port}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()

"""A small client of the Docker/OCI registry v2 API: what a tag points at, its digest, size and layers.

Authentication as registries ask for it in `WWW-Authenticate`: none, Basic, or Bearer tokens from the registry's
token service (with the credentials, when there are any, else anonymously). Manifests are asked for in every type
(a manifest asked for without its type may come back converted, with another digest); a manifest list or OCI index
is followed to its linux/amd64 manifest.
"""

import base64
import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPResponse
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """The registry refused or failed; the message says which request and why."""


@dataclass(frozen=True)
class ResolvedImage:
    digest: str  # of what the tag points at (an index when there is one)
    size: int  # bytes to download: the platform manifest's config and layers
    layers: list[dict[str, Any]] = field(default_factory=list)  # base first: digest, size, mediaType


def registry_base_url(registry: str, *, insecure: list[str]) -> str:
    """`https://registry`, or `http://` for a registry (host:port or host) listed as insecure."""
    plain = registry in insecure or registry.split(":")[0] in insecure
    return f"{'http' if plain else 'https'}://{registry}"


class Verified:
    """A blob's byte stream that checks its digest when it ends; `progress` gets the byte count of every read."""

    def __init__(self, stream: Any, digest: str, progress: Callable[[int], None] | None = None) -> None:
        self.stream, self.digest, self.progress = stream, digest, progress
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.hash.update(data)
        if self.progress and data:
            self.progress(len(data))
        return data

    def finish(self) -> None:
        """Read what is left (a tar reader stops before the end) and refuse content that is not what was asked for.

        Without a digest to compare with (a file image at a URL nobody hashed) only the reading is finished.
        """
        while self.read(1 << 20):
            pass
        got = "sha256:" + self.hash.hexdigest()
        if self.digest and got != self.digest:
            raise RegistryError(f"{self.digest} is corrupt: its content has the digest {got}")


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but keep the registry's credentials from other hosts: blobs are often redirected to object
    storage with a signed URL, which refuses a second authentication."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_opener = urllib.request.build_opener(_Redirects)


class RegistryClient:
    """One registry at `base_url` (`https://host[:port]`), with credentials used when it asks for them."""

    def __init__(self, base_url: str, *, username: str = "", password: str = "", timeout: float = 10) -> None:
        self.base = base_url.rstrip("/")
        self.credentials = (username, password) if username else None
        self.timeout = timeout
        self._authorization: str | None = None

    def _open(self, url: str, headers: dict[str, str]) -> HTTPResponse:
        """A response with any status (errors are responses here too), or RegistryError when there is none."""
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"{url}: only http and https URLs are followed")
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (the scheme is checked above)
        try:
            return _opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            return error  # type: ignore[return-value]
        except (OSError, ValueError) as error:
            raise RegistryError(f"{url}: {error}") from error

    def _get(self, path: str, accept: str) -> HTTPResponse:
        url = self.base + path
        for _ in range(2):
            headers = {"Accept": accept}
            if self._authorization:
                headers["Authorization"] = self._authorization
            response = self._open(url, headers)
            if response.status != 401 or self._authorization:
                break
            self._authorization = self._login(response.headers.get("WWW-Authenticate", ""), url)
        if response.status != 200:
            raise RegistryError(f"{url}: {response.status} {response.read(200).decode(errors='replace')}")
        return response

    def _trusted(self, realm: str) -> bool:
        """Whether the credentials may go to a token service: the registry's own host (any port), or any host over
        HTTPS. A plain HTTP realm elsewhere (a registry names any realm it likes) is asked for an anonymous token."""
        there, here = urllib.parse.urlsplit(realm), urllib.parse.urlsplit(self.base)
        return there.scheme == "https" or (there.hostname or "").lower() == (here.hostname or "").lower()

    def _basic(self) -> str:
        assert self.credentials is not None
        user, password = self.credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _login(self, challenge: str, url: str) -> str:
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryError(f"{url}: the registry wants a user name and password")
            return self._basic()
        if scheme == "bearer":
            params = dict(_CHALLENGE.findall(challenge))
            realm = params.pop("realm", "")
            response = self._open(
                f"{realm}?{urllib.parse.urlencode(params)}",
                {"Authorization": self._basic()} if self.credentials and self._trusted(realm) else {},
            )
            if response.status != 200:
                raise RegistryError(f"{realm}: the token service answered {response.status}")
            answer = json.loads(response.read())
            return f"Bearer {answer.get('token') or answer.get('access_token')}"
        raise RegistryError(f"{url}: unknown authentication {challenge!r}")

    def manifest(self, repository: str, reference: str) -> tuple[str, str, dict[str, Any]]:
        """(media type, digest, document) of a manifest."""
        response = self._get(f"/v2/{repository}/manifests/{reference}", ACCEPT)
        body = response.read()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        document = json.loads(body)
        media_type = response.headers.get("Content-Type", "").split(";")[0] or document.get("mediaType", "")
        return media_type, digest, document

    def blob(self, repository: str, digest: str, progress: Callable[[int], None] | None = None) -> Verified:
        """A blob as a stream (redirects to storage followed); call `finish()` after reading to check its digest."""
        return Verified(self._get(f"/v2/{repository}/blobs/{digest}", "*/*"), digest, progress)

    def platform_manifest(self, repository: str, reference: str) -> dict[str, Any]:
        """The linux/amd64 image manifest `reference` names (an index is followed); a pinned digest is checked."""
        media_type, digest, document = self.manifest(repository, reference)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{repository}@{reference}: the registry sent a manifest with the digest {digest}")
        if media_type not in (OCI_INDEX, DOCKER_LIST) and "manifests" not in document:
            return document
        for entry in document.get("manifests", []):
            platform = entry.get("platform", {})
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                return self.platform_manifest(repository, entry["digest"])
        raise RegistryError(f"{repository}:{reference}: no linux/amd64 image in the index")

    def resolve(self, repository: str, reference: str) -> ResolvedImage:
        """The digest a tag points at, and the linux/amd64 image's download size and layers."""
        _, digest, _ = self.manifest(repository, reference)
        manifest = self.platform_manifest(repository, digest)
        layers = [
            {"digest": layer["digest"], "size": layer["size"], "mediaType": layer.get("mediaType", "")}
            for layer in manifest.get("layers", [])
        ]
        size = sum(layer["size"] for layer in layers) + manifest.get("config", {}).get("size", 0)
        return ResolvedImage(digest=digest, size=size, layers=layers)

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
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings

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


class RegistryClient:
    def __init__(self, registry: str, *, username: str = "", password: str = "", timeout: float = 10) -> None:
        insecure = registry in settings.DOCK2BOX_INSECURE_REGISTRIES or registry.split(":")[0] in (
            settings.DOCK2BOX_INSECURE_REGISTRIES
        )
        self.base = f"{'http' if insecure else 'https'}://{registry}"
        self.credentials = (username, password) if username else None
        self.timeout = timeout
        self.session = requests.Session()
        self._authorization: str | None = None

    def _get(self, path: str, accept: str) -> requests.Response:
        url = self.base + path
        for _ in range(2):
            headers = {"Accept": accept}
            if self._authorization:
                headers["Authorization"] = self._authorization
            try:
                response = self.session.get(url, headers=headers, timeout=self.timeout)
            except requests.RequestException as error:
                raise RegistryError(f"{url}: {error}") from error
            if response.status_code != 401 or self._authorization:
                break
            self._authorization = self._login(response.headers.get("WWW-Authenticate", ""), url)
        if response.status_code != 200:
            raise RegistryError(f"{url}: {response.status_code} {response.text[:200]}")
        return response

    def _login(self, challenge: str, url: str) -> str:
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryError(f"{url}: the registry wants a user name and password")
            user, password = self.credentials
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if scheme == "bearer":
            params = dict(_CHALLENGE.findall(challenge))
            realm = params.pop("realm", "")
            try:
                response = self.session.get(realm, params=params, auth=self.credentials, timeout=self.timeout)
            except requests.RequestException as error:
                raise RegistryError(f"{realm}: {error}") from error
            if response.status_code != 200:
                raise RegistryError(f"{realm}: the token service answered {response.status_code}")
            token = response.json().get("token") or response.json().get("access_token")
            return f"Bearer {token}"
        raise RegistryError(f"{url}: unknown authentication {challenge!r}")

    def manifest(self, repository: str, reference: str) -> tuple[str, str, dict[str, Any]]:
        """(media type, digest, document) of a manifest."""
        response = self._get(f"/v2/{repository}/manifests/{reference}", ACCEPT)
        body = response.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        document = json.loads(body)
        media_type = response.headers.get("Content-Type", "").split(";")[0] or document.get("mediaType", "")
        return media_type, digest, document

    def resolve(self, repository: str, reference: str) -> ResolvedImage:
        """The digest a tag points at, and the linux/amd64 image's download size and layers."""
        media_type, digest, document = self.manifest(repository, reference)
        manifest = document
        if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in document:
            chosen = next(
                (
                    entry
                    for entry in document.get("manifests", [])
                    if entry.get("platform", {}).get("os") == "linux"
                    and entry.get("platform", {}).get("architecture") == "amd64"
                ),
                None,
            )
            if chosen is None:
                raise RegistryError(f"{repository}:{reference}: no linux/amd64 image in the index")
            _, _, manifest = self.manifest(repository, chosen["digest"])
        layers = [
            {"digest": layer["digest"], "size": layer["size"], "mediaType": layer.get("mediaType", "")}
            for layer in manifest.get("layers", [])
        ]
        size = sum(layer["size"] for layer in layers) + manifest.get("config", {}).get("size", 0)
        return ResolvedImage(digest=digest, size=size, layers=layers)

"""Laying the image on the mounted root: a file tarball over HTTP, or a Docker/OCI image's layers from its registry.

Both are read once, as streams, straight onto the disk; both are checked against their sha256 digests.
"""

import queue
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from d2b_installer.shell import log
from images.layers import apply_layer
from images.registry import RegistryClient, RegistryError, Verified

# Layer media types the installer reads (every one the OCI and Docker specs define); "" for manifests without.
READABLE_LAYERS = {
    "",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
}


class Progress:
    """Counts downloaded bytes and reports every 10 % of `total` (once per step)."""

    def __init__(self, total: int, report: Callable[[int, str], None]) -> None:
        self.total, self.report, self.done, self.reported = max(total, 1), report, 0, 0

    def __call__(self, count: int) -> None:
        self.done += count
        percent = min(100, self.done * 100 // self.total)
        if percent >= self.reported + 10:
            self.reported = percent - percent % 10
            self.report(self.reported, f"{self.done // (1 << 20)} of {self.total // (1 << 20)} MiB")


class ReadAhead:
    """A blob read (downloaded, hashed, counted) by a thread, up to `depth` chunks ahead of the reader that
    decompresses it and writes the files: with two cores, both halves run at once (hashlib, zlib, the socket and the
    file writes let go of the GIL)."""

    def __init__(self, stream: Verified, chunk: int = 1 << 20, depth: int = 8) -> None:
        self.stream, self.chunk = stream, chunk
        self.chunks: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self.pending, self.ended = b"", False
        self.thread = threading.Thread(target=self._fill, name="read-ahead", daemon=True)
        self.thread.start()

    def _fill(self) -> None:
        try:
            while data := self.stream.read(self.chunk):
                self.chunks.put(data)
        except BaseException as error:  # handed to the reader, raised there
            self.chunks.put(error)
        else:
            self.chunks.put(b"")

    def read(self, size: int, /) -> bytes:
        """Up to `size` bytes (b"" at the end), as a layer's tar reader asks for them."""
        while not self.pending and not self.ended:
            item = self.chunks.get()
            if isinstance(item, BaseException):
                self.ended = True
                raise item
            self.pending, self.ended = item, not item
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def finish(self) -> None:
        """Read to the end and check the digest (see `Verified.finish`)."""
        while self.read(self.chunk):
            pass
        self.thread.join()
        self.stream.finish()


def _apply(root: Path, stream: Verified) -> None:
    """Apply a tar stream and check its digest; a corrupt download explains a broken tar better than the tar does."""
    ahead = ReadAhead(stream)
    try:
        apply_layer(root, ahead)
    except Exception:
        ahead.finish()
        raise
    ahead.finish()


def lay_file(*, root: Path, url: str, digest: str, size: int, report: Callable[[int, str], None]) -> str:
    """A tarball (.tar, .tar.gz, .tar.xz, .tar.bz2, .tar.zst) streamed from `url` onto `root`, its sha256 checked.
    Returns its digest (computed while reading when the portal has none)."""
    if not url.startswith(("http://", "https://")):
        raise RuntimeError(f"the image URL {url!r} is not http(s)")
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (checked above)
        total = int(response.headers.get("Content-Length") or size or 0)
        stream = Verified(response, digest, Progress(total, report))
        _apply(root, stream)
    log(f"file image laid, sha256 {'checked' if digest else 'not recorded: not checked'}")
    return digest or "sha256:" + stream.hash.hexdigest()


def docker_layers(*, client: RegistryClient, repository: str, reference: str) -> tuple[str, list[dict[str, Any]]]:
    """The digest `reference` names (the index, when the image has one) and its linux/amd64 layers, base first;
    an image the installer cannot read is refused here, before the disk is touched."""
    digest = reference if reference.startswith("sha256:") else client.manifest(repository, reference)[1]
    layers = client.platform_manifest(repository, digest).get("layers", [])
    if not layers:
        raise RegistryError(f"{repository}:{reference} has no layers (a schema 1 manifest is not supported)")
    unreadable = sorted({layer.get("mediaType", "") for layer in layers} - READABLE_LAYERS)
    if unreadable:
        raise RegistryError(f"{repository}:{reference} has layers of a type the installer cannot read: {unreadable}")
    return digest, layers


def lay_docker(
    *,
    root: Path,
    client: RegistryClient,
    repository: str,
    layers: list[dict[str, Any]],
    report: Callable[[int, str], None],
) -> None:
    """Apply an image's layers in order, base first, each layer's digest verified."""
    progress = Progress(sum(layer["size"] for layer in layers), report)
    for number, layer in enumerate(layers, 1):
        log(f"layer {number}/{len(layers)} {layer['digest']} ({layer['size']} bytes)")
        _apply(root, client.blob(repository, layer["digest"], progress))
    log(f"{len(layers)} layers applied, digests verified")

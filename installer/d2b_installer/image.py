"""Laying the image on the mounted root: a file tarball over HTTP, or a Docker/OCI image's layers from its registry.

Both are read once, as streams, straight onto the disk; both are checked against their sha256 digests. Layers are
downloaded one after the other by one thread, ahead of the one applying them (`Prefetch`).
"""

import contextlib
import functools
import queue
import threading
import urllib.request
from collections.abc import Callable, Iterable
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


class Mismatch:
    """A blob whose bytes all arrived but whose digest does not match (the error `Verified.finish` raised)."""

    def __init__(self, error: RegistryError) -> None:
        self.error = error


class Prefetch:
    """Blobs downloaded (hashed, counted) one after the other by one thread, up to `depth` chunks ahead of the reader
    that decompresses them and writes the files: with two cores, both halves run at once (hashlib, zlib, the socket
    and the file writes let go of the GIL), and while layer n is applied, layer n+1 is already downloading. Memory is
    bounded by the queue. A blob's digest is checked when its last byte has arrived; its reader hears the outcome
    (`BlobReader.finish`) before the layer counts as applied."""

    def __init__(self, blobs: Iterable[Callable[[], Verified]], chunk: int = 1 << 20, depth: int = 48) -> None:
        self.chunk = chunk
        self.chunks: queue.Queue[bytes | BaseException | Mismatch] = queue.Queue(depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._fill, args=(blobs,), name="prefetch", daemon=True)
        self.thread.start()

    def _fill(self, blobs: Iterable[Callable[[], Verified]]) -> None:
        try:
            for opened in blobs:
                stream = opened()
                while data := stream.read(self.chunk):
                    if not self._put(data):
                        return
                try:
                    stream.finish()
                except RegistryError as error:  # the reader sees the end of the bytes first, then this
                    self._put(Mismatch(error))
                    return
                if not self._put(b""):  # the blob's end: all of it arrived and its digest matches
                    return
        except BaseException as error:  # handed to the reader, raised there
            self._put(error)

    def _put(self, item: bytes | BaseException | Mismatch) -> bool:
        while not self.stopping.is_set():
            with contextlib.suppress(queue.Full):
                self.chunks.put(item, timeout=0.2)
                return True
        return False

    def next_blob(self) -> "BlobReader":
        return BlobReader(self.chunks)

    def stop(self) -> None:
        """No more blobs are read (an install that failed): the thread ends."""
        self.stopping.set()
        self.thread.join()


class BlobReader:
    """One blob of a `Prefetch`, as its layer's tar reader reads it. A download that failed raises where it is read
    (and again at `finish`: a reader in another thread, zstd's feeder, may have been the one to meet it); a digest that
    does not match is an end of the bytes for the reader and an error at `finish`, so the tar reader's own complaint
    about a broken stream comes first and the digest explains it."""

    def __init__(self, chunks: "queue.Queue[bytes | BaseException | Mismatch]") -> None:
        self.chunks, self.pending, self.ended = chunks, memoryview(b""), False
        self.error: BaseException | None = None

    def read(self, size: int, /) -> bytes:
        """Up to `size` bytes (b"" at the end)."""
        while not self.pending and not self.ended:
            item = self.chunks.get()
            if isinstance(item, Mismatch):
                self.ended, self.error = True, item.error
            elif isinstance(item, BaseException):
                self.ended, self.error = True, item
                raise item
            else:
                self.pending, self.ended = memoryview(item), not item
        data, self.pending = self.pending[:size], self.pending[size:]
        return bytes(data)

    def finish(self) -> None:
        """Read to the blob's end, which says its digest matched (or raises why not)."""
        while self.read(1 << 20):
            pass
        if self.error is not None:
            raise self.error


def _apply(root: Path, blob: BlobReader) -> None:
    """Apply a tar stream and check its digest; a corrupt download explains a broken tar better than the tar does."""
    try:
        apply_layer(root, blob)
    except Exception:
        blob.finish()
        raise
    blob.finish()


def lay_file(*, root: Path, url: str, digest: str, size: int, report: Callable[[int, str], None]) -> str:
    """A tarball (.tar, .tar.gz, .tar.xz, .tar.bz2, .tar.zst) streamed from `url` onto `root`, its sha256 checked.
    Returns its digest (computed while reading when the portal has none)."""
    if not url.startswith(("http://", "https://")):
        raise RuntimeError(f"the image URL {url!r} is not http(s)")
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (checked above)
        total = int(response.headers.get("Content-Length") or size or 0)
        stream = Verified(response, digest, Progress(total, report))
        prefetch = Prefetch([lambda: stream])
        try:
            _apply(root, prefetch.next_blob())
        finally:
            prefetch.stop()
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
    prefetch = Prefetch(functools.partial(client.blob, repository, layer["digest"], progress) for layer in layers)
    try:
        for number, layer in enumerate(layers, 1):
            log(f"layer {number}/{len(layers)} {layer['digest']} ({layer['size']} bytes)")
            _apply(root, prefetch.next_blob())
    finally:
        prefetch.stop()
    log(f"{len(layers)} layers applied, digests verified")

"""Real Debian images built from Dockerfiles, as an operator builds them, without a Docker daemon.

A minbase root made by `mmdebstrap` stands in for Docker Hub's `debian:<suite>` (no internet here but Debian's
archive): it is cached under var/cache, imported with podman and pushed to the suite's registry as
`library/debian:<suite>`. The shipped base recipe (deploy/images/debian-<n>) is built `FROM` it with buildah, then the
example application (deploy/images/example-nginx) `FROM` the pushed base; both are pushed, the application's own
layer zstd-compressed (as Docker and podman can push it). Container storage is a directory of the test session's.
"""

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.services import stop, wait_until

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "deploy/images"
SUITES = {"12": "bookworm", "13": "trixie"}


def _run(*command: str, timeout: float = 900) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    return done.stdout


def minbase_root(suite: str, cache: Path) -> Path:
    """`mmdebstrap --variant=minbase <suite>` as a tarball, made once per machine (15-30 s) and kept in `cache`."""
    tarball = cache / f"{suite}-minbase.tar"
    if not tarball.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        _run("mmdebstrap", "--variant=minbase", "--format=tar", suite, str(partial))
        partial.rename(tarball)
    return tarball


@dataclass
class Containers:
    """podman and buildah on a storage directory of their own, pushing to a plain-HTTP registry on loopback."""

    storage: Path
    registry: str  # host:port

    def _options(self) -> list[str]:
        return ["--root", str(self.storage / "root"), "--runroot", str(self.storage / "run")]

    def podman(self, *arguments: str) -> str:
        return _run("podman", *self._options(), *arguments)

    def buildah(self, *arguments: str) -> str:
        return _run("buildah", *self._options(), *arguments)

    def push(self, local: str, repository: str, *, compression: str = "gzip") -> str:
        """Push a local image to `repository` (name:tag) in the registry; returns the pushed manifest's digest."""
        digest_file = self.storage / "pushed-digest"
        self.buildah("push", "--tls-verify=false", "--compression-format", compression, "--digestfile",
                     str(digest_file), local, f"docker://{self.registry}/{repository}")  # fmt: skip
        return digest_file.read_text().strip()

    def build(self, recipe: Path, tag: str, **build_args: str) -> None:
        arguments = [item for name, value in build_args.items() for item in ("--build-arg", f"{name}={value}")]
        self.buildah("bud", "--isolation", "chroot", "--network", "host", "--tls-verify=false", *arguments,
                     "-t", tag, str(recipe))  # fmt: skip

    @contextlib.contextmanager
    def engine(self) -> Iterator[str]:
        """podman's Docker Engine API (`podman system service`) on this storage: a `DOCKER_HOST` for the docker SDK."""
        socket = self.storage / "podman.sock"
        socket.unlink(missing_ok=True)
        with (self.storage / "podman-service.log").open("a") as log:
            process = subprocess.Popen(["podman", *self._options(), "system", "service", "--time=0",
                                        f"unix://{socket}"], stdout=log, stderr=log)  # fmt: skip
        try:
            wait_until(socket.exists, timeout=30, what="podman system service")
            yield f"unix://{socket}"
        finally:
            stop(process)

    def file_of(self, image: str, path: str) -> bytes:
        """A file of a local image, read from a working container's mount."""
        container = self.buildah("from", "--pull-never", image).strip()
        try:
            return (Path(self.buildah("mount", container).strip()) / path.lstrip("/")).read_bytes()
        finally:
            self.buildah("rm", container)


@dataclass(frozen=True)
class DebianImages:
    release: str  # 12, 13
    base: str  # repository:tag of the bootable base in the registry
    app: str  # repository:tag of the nginx application built FROM it
    app_digest: str
    app_name: str  # what the application's page says it is
    image_host_key: bytes  # the ed25519 host key the build left in the image


def debian_images(containers: Containers, release: str, cache: Path) -> DebianImages:
    """Debian `release`'s base and nginx application, built from the shipped recipes and pushed."""
    suite = SUITES[release]
    containers.podman("import", str(minbase_root(suite, cache)), f"localhost/debian:{suite}")
    containers.push(f"localhost/debian:{suite}", f"library/debian:{suite}")
    containers.build(RECIPES / f"debian-{release}", f"localhost/d2b-debian:{release}",
                     BASE=f"{containers.registry}/library/debian:{suite}",
                     KERNEL="linux-image-cloud-amd64")  # fmt: skip  # smaller and quicker to boot under QEMU
    base = f"dock2box/debian:{release}"
    containers.push(f"localhost/d2b-debian:{release}", base)
    name = f"web-{release}"
    containers.build(RECIPES / "example-nginx", f"localhost/web:{release}", BASE=f"{containers.registry}/{base}",
                     NAME=name)  # fmt: skip
    app = f"demo/web:{release}"
    digest = containers.push(f"localhost/web:{release}", app, compression="zstd")
    key = containers.file_of(f"localhost/web:{release}", "/etc/ssh/ssh_host_ed25519_key.pub")
    return DebianImages(release, base, app, digest, name, key)


def layer_types(registry: str, image: str) -> list[str]:
    """The media types of an image's (`repository:tag`) layers as the registry (`host:port`) serves its manifest."""
    raw = _run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/{image}")
    return [layer["mediaType"] for layer in json.loads(raw)["layers"]]

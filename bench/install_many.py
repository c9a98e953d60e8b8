"""Ten installs at once, without QEMU: the installer's image stage (`d2b_installer.image`, the code the installer
runs) in ten processes, each into its own directory, from one registry and from one portal, against ten plain
`curl`s of the same blobs in the same run. Run through `bench/install.py --concurrent N`.

The bytes: a Debian image in docker-registry on loopback (the Debian 12 minbase root the suite builds, gzip, plus a
small second layer: the prefetch downloads it while the first applies), and the same root as a file image stored in
the portal (gunicorn, three workers, on SQLite in a temporary directory; `/files/...` with its range serving). For
each source: ten `curl -o /dev/null` of its blobs at once, then ten image stages at once (each digest checked), each
timed from start to the last process's end; and the CPU seconds the portal's processes and the registry's used
meanwhile. Prints a Markdown table.
"""

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "var/cache/debian-roots/bookworm-minbase.tar"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
STAGE = """
import sys
from pathlib import Path
from d2b_installer.image import docker_layers, lay_docker, lay_file
from images.registry import RegistryClient
kind, target = sys.argv[1], Path(sys.argv[2])
target.mkdir()
if kind == "docker":
    client = RegistryClient(sys.argv[3], timeout=120)
    _, layers = docker_layers(client=client, repository=sys.argv[4], reference=sys.argv[5])
    lay_docker(root=target, client=client, repository=sys.argv[4], layers=layers, report=lambda *_: None)
else:
    lay_file(root=target, url=sys.argv[3], digest=sys.argv[4], size=int(sys.argv[5]), report=lambda *_: None)
"""


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process and its children (gunicorn's workers), so far."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for each in [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def at_once(commands: list[list[str]], env: dict[str, str] | None = None) -> float:
    """Run the commands at once; the wall seconds until the last one ended (any failure ends the benchmark)."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(lambda each: subprocess.run(each, capture_output=True, text=True, env=env), commands))
    failed = [result.stderr[-500:] for result in results if result.returncode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(commands)} failed: {failed[0]}")
    return time.monotonic() - started


def second_layer() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        data = os.urandom(8 << 20)
        info = tarfile.TarInfo("opt/app/data.bin")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), 1)


def run(count: int, work: Path, portal_pid: int, file_version: dict, registry) -> list[tuple]:  # type: ignore[no-untyped-def]
    """The two sources, curl then the image stage, each `count` at once."""
    rows = []
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'installer'}"}
    base = f"http://{registry.address}/v2/debian/minbase/blobs"
    sources = {
        "registry (2 layers)": ([f"{base}/{digest}" for digest, _ in file_version["layers"]],
                                sum(size for _, size in file_version["layers"]),
                                ["docker", registry.url, "debian/minbase", "12"]),
        "portal (file image)": ([file_version["url"]], file_version["size"],
                                ["file", file_version["url"], file_version["digest"], str(file_version["size"])]),
    }  # fmt: skip
    for label, (urls, size, arguments) in sources.items():
        curl = ["sh", "-c", " && ".join(f"curl -sf -o /dev/null {url}" for url in urls)]
        cpu = (cpu_seconds(portal_pid), cpu_seconds(registry.process.pid))
        curl_seconds = at_once([curl] * count)
        stages = [[sys.executable, "-c", STAGE, arguments[0], str(work / f"{arguments[0]}-{number}"), *arguments[1:]]
                  for number in range(count)]  # fmt: skip
        middle = (cpu_seconds(portal_pid), cpu_seconds(registry.process.pid))
        stage_seconds = at_once(stages, env)
        after = (cpu_seconds(portal_pid), cpu_seconds(registry.process.pid))
        mib = count * size / (1 << 20)
        rows.append((label, size / (1 << 20), mib / curl_seconds, mib / stage_seconds,
                     middle[0] - cpu[0], after[0] - middle[0], middle[1] - cpu[1], after[1] - middle[1]))  # fmt: skip
        subprocess.run(["rm", "-rf", *(stage[4] for stage in stages)], check=True)
    return rows


def main(count: int) -> None:
    if not SOURCE.exists():
        sys.exit(f"{SOURCE} is missing: run the test suite once (make test), which builds it")
    sys.path.insert(0, str(ROOT))
    from tests.registry import Registry
    from tests.services import free_port, wait_until

    work = Path(tempfile.mkdtemp(prefix="d2b-bench-many-"))
    (work / "registry").mkdir()
    registry = Registry(work / "registry")
    root_layer = gzip.compress(SOURCE.read_bytes(), 6)
    app_layer = second_layer()
    registry.put_image("debian/minbase", "12", [(GZIP_LAYER, root_layer), (GZIP_LAYER, app_layer)])
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work}/db.sqlite3", "DJANGO_SECRET_KEY": "bench-only",
           "DOCK2BOX_VAR_DIR": str(work / "var"), "DJANGO_ALLOWED_HOSTS": "*", "CELERY_BROKER_URL": "",
           "DOCK2BOX_LOG_LEVEL": "WARNING", "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/14",
           "DOCK2BOX_PUBLIC_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    (work / "root.tar.gz").write_bytes(root_layer)
    store = ("from django.core.files import File; from django.utils import timezone; from images import services; "
             "image = services.image_create(data={'name': 'debian-root', 'type': 'file'}); "
             f"version = services.image_version_create(data={{'image': image, 'version': '12', 'timestamp': "
             f"timezone.now(), 'file': File(open('{work}/root.tar.gz', 'rb'), name='root.tar.gz')}}); "
             "print('STORED', version.digest, version.size)")  # fmt: skip
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    said = subprocess.run([*manage, "shell", "-c", store], env=env, check=True, capture_output=True, text=True).stdout
    digest, size = next(line for line in said.splitlines() if line.startswith("STORED ")).split()[1:]
    log = (work / "gunicorn.log").open("w")
    portal = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "dock2box.wsgi", "--bind",
                               f"127.0.0.1:{port}", "--workers", "3"], cwd=ROOT, env=env, stdout=log, stderr=log)  # fmt: skip
    try:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1), what="gunicorn")
        layers = [(f"sha256:{hashlib.sha256(blob).hexdigest()}", len(blob)) for blob in (root_layer, app_layer)]
        version = {"url": f"http://127.0.0.1:{port}/files/images/debian-root/12/file", "digest": digest,
                   "size": int(size), "layers": layers}  # fmt: skip
        rows = run(count, work, portal.pid, version, registry)
    finally:
        portal.terminate()
        portal.wait()
        registry.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"Command: `.venv/bin/python bench/install.py --concurrent {count}` ({SOURCE.name}, gzip -6)\n")
    print(
        "| source | MiB each | curl MiB/s | image stage MiB/s (ratio) | portal CPU s (curl / stages) | registry CPU s "
        "(curl / stages) |\n|---|---|---|---|---|---|"
    )
    for label, mib, curl, stage, portal_curl, portal_stage, registry_curl, registry_stage in rows:
        print(
            f"| {label} | {mib:.0f} | {curl:.0f} | {stage:.0f} ({stage / curl:.2f}x) | {portal_curl:.1f} / "
            f"{portal_stage:.1f} | {registry_curl:.1f} / {registry_stage:.1f} |"
        )

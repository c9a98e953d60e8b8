"""Ten installs at once, without QEMU: the installer's image stage (`d2b_installer.image`, the code the installer
runs) in ten processes, each into its own directory, from one registry and from one portal, against ten plain
`curl`s of the same blobs in the same run. Run through `bench/install.py --concurrent N`.

The bytes: a Debian image in docker-registry on loopback (the Debian 12 minbase root the suite builds, gzip, plus a
small second layer: the prefetch downloads it while the first applies), and the same root as a file image stored in
the portal (on SQLite in a temporary directory): from gunicorn itself (three sync workers; `/files/...` with its
range serving), and from nginx in front of a second gunicorn as deploy/nginx/dock2box.conf has it, the portal
answering with `X-Accel-Redirect` (DOCK2BOX_FILES_ACCEL_REDIRECT) and nginx sending the file. For each source, ten at
once of: `curl -o /dev/null` of its blobs; the installer's download path alone (the image stage with `apply_layer`
replaced by reading each blob to its end: downloaded, prefetched, digest checked); the whole image stage. Each is
timed from start to the last process's end, with the CPU seconds the source's servers used meanwhile. Prints a
Markdown table.
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
from d2b_installer import image
from images.registry import RegistryClient
part, kind, target = sys.argv[1], sys.argv[2], Path(sys.argv[3])
target.mkdir()
if part == "download":
    image.apply_layer = lambda root, blob: blob.finish()
if kind == "docker":
    client = RegistryClient(sys.argv[4], timeout=120)
    _, layers = image.docker_layers(client=client, repository=sys.argv[5], reference=sys.argv[6])
    image.lay_docker(root=target, client=client, repository=sys.argv[5], layers=layers, report=lambda *_: None)
else:
    image.lay_file(root=target, url=sys.argv[4], digest=sys.argv[5], size=int(sys.argv[6]), report=lambda *_: None)
"""


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of processes and their children (gunicorn's and nginx's workers), so far."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
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


def run(count: int, work: Path, sources: dict[str, tuple[list[str], int, list[str], list[int]]]) -> list[tuple]:
    """Each source: curl, the download path, the image stage, each `count` at once."""
    rows = []
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'installer'}"}
    for label, (urls, size, arguments, servers) in sources.items():
        curl = ["sh", "-c", " && ".join(f"curl -sf -o /dev/null {url}" for url in urls)]
        mib, seconds, cpu = count * size / (1 << 20), [], []
        for part in ("curl", "download", "stage"):
            commands = [curl] * count
            if part != "curl":
                commands = [[sys.executable, "-c", STAGE, part, arguments[0], str(work / f"{label}-{part}-{number}"),
                             *arguments[1:]] for number in range(count)]  # fmt: skip
            before = cpu_seconds(servers)
            seconds.append(at_once(commands, env))
            cpu.append(cpu_seconds(servers) - before)
            subprocess.run(["sh", "-c", f"rm -rf '{work}/{label}'-*"], check=True)
        rows.append((label, size / (1 << 20), *(mib / each for each in seconds), *cpu))
    return rows


def main(count: int) -> None:
    if not SOURCE.exists():
        sys.exit(f"{SOURCE} is missing: run the test suite once (make test), which builds it")
    sys.path.insert(0, str(ROOT))
    from tests.registry import Registry
    from tests.services import Nginx, free_port, wait_until

    work = Path(tempfile.mkdtemp(prefix="d2b-bench-many-"))
    (work / "registry").mkdir()
    (work / "nginx").mkdir()
    registry = Registry(work / "registry")
    root_layer = gzip.compress(SOURCE.read_bytes(), 6)
    app_layer = second_layer()
    registry.put_image("debian/minbase", "12", [(GZIP_LAYER, root_layer), (GZIP_LAYER, app_layer)])
    ports = [free_port(), free_port()]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work}/db.sqlite3", "DJANGO_SECRET_KEY": "bench-only",
           "DOCK2BOX_VAR_DIR": str(work / "var"), "DJANGO_ALLOWED_HOSTS": "*", "CELERY_BROKER_URL": "",
           "DOCK2BOX_LOG_LEVEL": "WARNING", "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/14"}  # fmt: skip
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
    portals = [
        subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "dock2box.wsgi", "--bind",
                          f"127.0.0.1:{port}", "--workers", "3"], cwd=ROOT, stdout=log, stderr=log,
                         env={**env, "DOCK2BOX_PUBLIC_URL": f"http://127.0.0.1:{port}",
                              "DOCK2BOX_FILES_ACCEL_REDIRECT": "/protected-media" if accel else ""})
        for port, accel in zip(ports, (False, True), strict=True)
    ]  # fmt: skip
    nginx = Nginx(work / "nginx", [f"127.0.0.1:{ports[1]}"], media=work / "var/media")
    try:
        for port in ports:
            wait_until(lambda port=port: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1),
                       what="gunicorn")  # fmt: skip
        nginx.start()
        assert nginx.process is not None
        layers = [(f"sha256:{hashlib.sha256(blob).hexdigest()}", len(blob)) for blob in (root_layer, app_layer)]
        base = f"http://{registry.address}/v2/debian/minbase/blobs"
        file_path = "/files/images/debian-root/12/file"
        file_arguments = [digest, size]
        sources = {
            "registry (2 layers)": ([f"{base}/{digest}" for digest, _ in layers], sum(size for _, size in layers),
                                    ["docker", registry.url, "debian/minbase", "12"], [registry.process.pid]),
            "portal (file image, gunicorn)": ([f"http://127.0.0.1:{ports[0]}{file_path}"], int(size),
                                              ["file", f"http://127.0.0.1:{ports[0]}{file_path}", *file_arguments],
                                              [portals[0].pid]),
            "portal (file image, nginx + X-Accel-Redirect)": ([f"{nginx.url}{file_path}"], int(size),
                                                              ["file", f"{nginx.url}{file_path}", *file_arguments],
                                                              [portals[1].pid, nginx.process.pid]),
        }  # fmt: skip
        rows = run(count, work, sources)
    finally:
        nginx.stop()
        for portal in portals:
            portal.terminate()
            portal.wait()
        registry.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"Command: `.venv/bin/python bench/install.py --concurrent {count}` ({SOURCE.name}, gzip -6)\n")
    print(
        "| source | MiB each | curl MiB/s | download path MiB/s (ratio) | image stage MiB/s (ratio) | servers' CPU s "
        "(curl / download / stage) |\n|---|---|---|---|---|---|"
    )
    for label, mib, curl, download, stage, *cpu in rows:
        print(
            f"| {label} | {mib:.0f} | {curl:.0f} | {download:.0f} ({download / curl:.2f}x) | {stage:.0f} "
            f"({stage / curl:.2f}x) | {' / '.join(f'{each:.1f}' for each in cpu)} |"
        )

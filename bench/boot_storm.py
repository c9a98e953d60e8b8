"""Boot storm: the portal under gunicorn on PostgreSQL, hammered by wrk, against nginx serving a static file.

    .venv/bin/python bench/boot_storm.py [--hosts 10000] [--duration 15] [--workers 5] [--instances 1] [--code DIR]

Seeds a fresh PostgreSQL database (`dock2box_bench`) with N hosts (10 % in build mode), starts gunicorn as it would
be deployed on this machine (Redis as the shared cache), and measures with wrk (Debian) and a Lua script that walks
the MACs:
  0. (this checkout's code only) every known host's script rendered ahead, as the worker's beat does;
  1. per-host scripts only (`/ipxe?mac=`), 50 and 200 connections; the same hosts' GRUB configs (`/grub?mac=`,
     the Secure Boot chain's, relayed by the TFTP server), 50 connections;
  2. the full chain per MAC (`/boot.ipxe` → `/ipxe` → `/config/<token>` for hosts in build), 50 and 200 connections;
  3. `/config/<token>` of the hosts in build mode, each format on its own line, 50 connections (after a warm-up,
     as for 1: a build's first use binds it and writes, later ones within `DOCK2BOX_LAST_SEEN_INTERVAL` do not);
  4. a rack of 1,000 hosts powering on at once: 1,000 concurrent clients each running its chain once;
  5. nginx serving a static file of the size of a per-host script, same load as 1 (the limit of this machine);
and counts SQL queries per boot request in-process. Prints a Markdown report (paste it into docs/benchmarks.md).

`--instances N` runs N gunicorns (each with `--workers`) behind nginx configured as deploy/nginx/dock2box.conf, and
measures through nginx. `--code DIR` serves the portal from another checkout of the same schema (a `git worktree` of
an earlier commit), to measure before and after a change in one run; the seeding and the query counts use this one.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "dock2box_bench"
ENV = {
    **os.environ,
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    "DJANGO_SECRET_KEY": "bench-only",
    "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/15",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DOCK2BOX_LOG_LEVEL": "WARNING",
    "DOCK2BOX_VAR_DIR": tempfile.mkdtemp(prefix="d2b-bench-"),
}
WRK_LUA = """
local paths = {}
local index = 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  index = math.random(#paths)
end
function request()
  index = index % #paths + 1
  return wrk.format("GET", paths[index])
end
"""


def sh(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, env=ENV, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(hosts: int) -> dict[str, object]:
    """A fresh database with `hosts` hosts; returns the MACs and the build tokens."""
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DATABASE}"], check=True
    )
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DATABASE}"], check=True)
    sh(sys.executable, "manage.py", "migrate", "-v0")
    code = f"""
import json, secrets
from datetime import UTC, datetime
from django.utils import timezone
from hosts.models import Host, Interface, Site, Subnet
from images.models import Image, ImageVersion
from provisioning.catalogue.services import boot_defaults_update
from provisioning.models import Build, PxeMenu, PxeMenuItem
site = Site.objects.create(name="bench1", domain="bench.example.com", file_uri="http://files.bench.example.com",
                           registry="registry.bench.example.com:5000", dns_servers="10.100.0.2")
subnet = Subnet.objects.create(site=site, network="10.100.0.0/16", gateway="10.100.0.1")
boot = Image.objects.create(name="bootenv", type="boot")
boot_version = ImageVersion.objects.create(image=boot, version="1", timestamp=datetime(2026, 1, 1, tzinfo=UTC))
for number in range(4):
    image = Image.objects.create(name=f"image-{{number}}", type="docker" if number % 2 else "file")
    for day in range(1, 4):
        ImageVersion.objects.create(image=image, version=f"v{{day}}", timestamp=datetime(2026, 1, day, tzinfo=UTC))
menu = PxeMenu.objects.create(name="main", title="Bench")
PxeMenuItem.objects.create(menu=menu, key="shell", label="iPXE shell", commands="shell")
boot_defaults_update(data={{"pxe_menu": menu, "boot_version": boot_version}})
image = Image.objects.get(name="image-1")
hosts = Host.objects.bulk_create(
    [Host(fqdn=f"node{{n:05d}}.bench.example.com", site=site, image=image, build=n % 10 == 0) for n in range({hosts})]
)
interfaces = []
for n, host in enumerate(hosts):
    address = 0x0A640000 + 10 + n
    interfaces.append(Interface(host=host, name="eth0", mac=f"52:54:01:{{n >> 16 & 255:02x}}:{{n >> 8 & 255:02x}}:{{n & 255:02x}}",
                                ip=f"{{address >> 24}}.{{address >> 16 & 255}}.{{address >> 8 & 255}}.{{address & 255}}",
                                subnet=subnet, netmask="255.255.0.0", gateway="10.100.0.1", primary=True))
Interface.objects.bulk_create(interfaces)
now = timezone.now()
builds = Build.objects.bulk_create([Build(host=host, token=secrets.token_urlsafe(32), last_activity=now)
                                    for host in hosts if host.build])
tokens = {{build.host_id: build.token for build in builds}}
print(json.dumps([[i.mac, tokens.get(i.host_id)] for i in interfaces]))
"""
    out = sh(sys.executable, "manage.py", "shell", "-c", code, capture_output=True, text=True).stdout
    return {"macs": json.loads(out.strip().splitlines()[-1])}


class Gunicorn:
    def __init__(self, workers: int, code: Path, port: int, public_url: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**ENV, "DOCK2BOX_PUBLIC_URL": public_url}
        self.log = open(Path(ENV["DOCK2BOX_VAR_DIR"]) / f"gunicorn-{self.port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "dock2box.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--backlog", "4096"],
            env=env, cwd=code, stdout=self.log, stderr=self.log,
        )  # fmt: skip
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{self.url}/boot.ipxe", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def worker_rss_mib(self) -> list[float]:
        """The resident memory of each of its workers (MiB)."""
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        sizes = []
        for pid in children:
            status = Path(f"/proc/{pid}/status").read_text()
            sizes.append(int(re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE).group(1)) / 1024)  # type: ignore[union-attr]
        return sizes

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def render_ahead(url: str) -> tuple[int, float]:
    """What the worker's beat does every 4/5 of DOCK2BOX_BOOT_CACHE_SECONDS, once: every known host's script rendered
    ahead into the shared cache. Returns how many and the seconds it took."""
    started = time.monotonic()
    code = "from provisioning.boot.tasks import boot_scripts_render_ahead as ahead; print(ahead())"
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], check=True, capture_output=True, text=True, cwd=ROOT,
        env={**ENV, "DOCK2BOX_PUBLIC_URL": url},
    ).stdout  # fmt: skip
    return int(out.strip().splitlines()[-1]), time.monotonic() - started


def wrk(url: str, paths: list[str], connections: int, duration: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="d2b-wrk-"))
    (workdir / "paths.txt").write_text("\n".join(paths) + "\n")
    (workdir / "walk.lua").write_text(WRK_LUA)
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
         "-s", str(workdir / "walk.lua"), url, "--", str(workdir / "paths.txt")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return parse_wrk(result.stdout)


def parse_wrk(text: str) -> dict[str, float]:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]

    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, flags=re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),  # type: ignore[union-attr]
        "p50_ms": ms(latency["50"]),
        "p99_ms": ms(latency["99"]),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


def chain_paths(macs: list[list[str | None]]) -> list[str]:
    paths = []
    for mac, token in macs:
        paths += ["/boot.ipxe", f"/ipxe?mac={mac}&platform=pcbios"]
        if token:
            paths.append(f"/config/{token}")
    return paths


async def rack(port: int, macs: list[list[str | None]]) -> dict[str, float]:
    """Every host of a rack runs its chain once, all at the same moment."""

    async def get(path: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        return int(data.split(b" ", 2)[1]), data

    async def host(mac: str, token: str | None) -> int:
        failures = 0
        paths = ["/boot.ipxe", f"/ipxe?mac={mac}&platform=pcbios"] + ([f"/config/{token}"] if token else [])
        for path in paths:
            status, _ = await get(path)
            failures += status != 200
        return failures

    start = time.monotonic()
    failures = await asyncio.gather(*(host(mac, token) for mac, token in macs))  # type: ignore[arg-type]
    return {"seconds": time.monotonic() - start, "hosts": len(macs), "errors": sum(failures)}


def nginx_static(size: int, paths_count: int, connections: int, duration: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="d2b-nginx-"))
    (workdir / "www").mkdir()
    (workdir / "www" / "ipxe").write_bytes(b"x" * size)
    port = free_port()
    (workdir / "nginx.conf").write_text(
        f"worker_processes auto; pid {workdir}/nginx.pid; error_log {workdir}/error.log;\n"
        f"events {{ worker_connections 4096; }}\n"
        f"http {{ access_log off; client_body_temp_path {workdir}; proxy_temp_path {workdir};\n"
        f"  fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir};\n"
        f"  server {{ listen 127.0.0.1:{port}; root {workdir}/www; default_type text/plain; }} }}\n"
    )
    process = subprocess.Popen(["nginx", "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"])
    time.sleep(1)
    try:
        return wrk(f"http://127.0.0.1:{port}", ["/ipxe"] * paths_count, connections, duration)
    finally:
        process.terminate()
        process.wait()


def queries_per_request(macs: list[list[str | None]], sample: int = 300) -> dict[str, float]:
    """SQL queries per boot request, counted in-process with Django's test client over a sample of MACs."""
    os.environ.update(ENV)
    os.environ["DJANGO_SETTINGS_MODULE"] = "dock2box.settings"
    os.environ["DOCK2BOX_PUBLIC_URL"] = "http://127.0.0.1"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.get(f"/ipxe?mac={macs[1][0]}")  # warm the catalogue
    counts: dict[str, list[int]] = {"boot.ipxe": [], "ipxe (known)": [], "ipxe (build)": [], "config": []}
    for mac, token in macs[:sample]:
        for name, path in [
            ("boot.ipxe", "/boot.ipxe"),
            ("ipxe (build)" if token else "ipxe (known)", f"/ipxe?mac={mac}"),
        ]:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(path).status_code == 200
            counts[name].append(len(captured))
        if token:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(f"/config/{token}").status_code == 200
            counts["config"].append(len(captured))
    unknown = []
    for n in range(50):
        with CaptureQueriesContext(connection) as captured:
            client.get(f"/ipxe?mac=52:54:02:00:00:{n:02x}")
        unknown.append(len(captured))
    counts["ipxe (unknown)"] = unknown
    return {name: (statistics.mean(values), max(values)) for name, values in counts.items() if values}  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--code", type=Path, default=ROOT)
    args = parser.parse_args()
    for program in ["wrk", "nginx", "psql"]:
        if not shutil.which(program):
            sys.exit(f"{program} is missing: apt-get install wrk nginx-light postgresql-client")

    started = time.monotonic()
    macs = seed(args.hosts)["macs"]
    seeded = time.monotonic() - started
    ports = [free_port() for _ in range(args.instances)]
    balancer = None
    if args.instances > 1:
        from tests.services import Nginx

        balancer = Nginx(Path(tempfile.mkdtemp(prefix="d2b-lb-")), [f"127.0.0.1:{port}" for port in ports])
    url, port = (balancer.url, balancer.port) if balancer else (f"http://127.0.0.1:{ports[0]}", ports[0])
    servers = [Gunicorn(args.workers, args.code.resolve(), port, url) for port in ports]
    if balancer:
        balancer.start()
    ahead = render_ahead(url) if args.code.resolve() == ROOT else None
    results: dict[str, dict[str, float]] = {}
    try:
        script_paths = [f"/ipxe?mac={mac}&platform=pcbios" for mac, _ in macs]
        wrk(url, script_paths, 50, 3)  # warm-up: connections, catalogue, first last-seen writes
        results["per-host script, 50 connections"] = wrk(url, script_paths, 50, args.duration)
        results["per-host script, 200 connections"] = wrk(url, script_paths, 200, args.duration)
        grub_paths = [f"/grub?mac={mac}" for mac, _ in macs]
        wrk(url, grub_paths, 50, 3)  # warm-up: the GRUB configs are kept apart from the iPXE scripts
        results["per-host GRUB config, 50 connections"] = wrk(url, grub_paths, 50, args.duration)
        results["full chain, 50 connections"] = wrk(url, chain_paths(macs), 50, args.duration)
        results["full chain, 200 connections"] = wrk(url, chain_paths(macs), 200, args.duration)
        tokens = [token for _, token in macs if token]
        wrk(url, [f"/config/{token}" for token in tokens], 50, 3)  # warm-up: each build's first use and its writes
        for fmt in ["env", "json", "kickstart", "preseed", "cloud-init"]:
            paths = [f"/config/{token}?format={fmt}" for token in tokens]
            results[f"config ({fmt}), 50 connections"] = wrk(url, paths, 50, args.duration)
        rack_result = asyncio.run(rack(port, macs[:1000]))
        size = len(urllib.request.urlopen(f"{url}/ipxe?mac={macs[1][0]}").read())
        rss = [size_mib for server in servers for size_mib in server.worker_rss_mib()]
    finally:
        if balancer:
            balancer.stop()
        for server in servers:
            server.stop()
    results["nginx static file, 50 connections"] = nginx_static(size, 1000, 50, args.duration)
    queries = queries_per_request(macs)

    ratio = results["per-host script, 50 connections"]["rps"] / results["nginx static file, 50 connections"]["rps"]
    shape = f"{args.instances} x gunicorn {args.workers} sync workers" + (" behind nginx" if balancer else "")
    print(f"## Boot storm ({datetime.now(UTC):%Y-%m-%d}, {args.hosts} hosts, {shape})\n")
    print(f"Command: `.venv/bin/python bench/boot_storm.py --hosts {args.hosts} --duration {args.duration} "
          f"--workers {args.workers} --instances {args.instances}` (code: {args.code}; seeding took {seeded:.0f} s; "
          f"script size {size} bytes)\n")  # fmt: skip
    print("| load | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
    for name, result in results.items():
        print(
            f"| {name} | {result['rps']:.0f} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['errors']:.0f} |"
        )
    grub = results["per-host GRUB config, 50 connections"]["rps"] / results["per-host script, 50 connections"]["rps"]
    print(f"\nPer-host scripts reach {ratio:.1%} of nginx serving a static file of the same size; GRUB configs "
          f"{grub:.2f}x the per-host iPXE rate.\n")  # fmt: skip
    served = sum(result["requests"] for name, result in results.items() if not name.startswith("nginx"))
    print(f"Web workers' resident memory after the run ({served:.0f} requests over {args.hosts} hosts, "
          f"{len(rss)} workers): {min(rss):.0f}-{max(rss):.0f} MiB.\n")  # fmt: skip
    if ahead:
        print(
            f"Scripts rendered ahead before the load (the worker's beat, run once): {ahead[0]} in {ahead[1]:.1f} s.\n"
        )
    print(f"Rack of {rack_result['hosts']:.0f} hosts powering on at once: every chain served in "
          f"{rack_result['seconds']:.1f} s, {rack_result['errors']:.0f} errors.\n")  # fmt: skip
    print("| SQL queries per request | mean | max |\n|---|---|---|")
    for name, (mean, most) in queries.items():  # type: ignore[misc]
        print(f"| {name} | {mean:.2f} | {most} |")


if __name__ == "__main__":
    main()

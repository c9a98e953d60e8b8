"""etcd mirror: full sync, idle reconcile and change lag at 10,000 hosts, against plain batched puts.

    .venv/bin/python bench/etcd_sync.py [--hosts 10000] [--changes 50]

Seeds a fresh PostgreSQL database (`dock2box_etcdbench`) with N hosts of two interfaces each, starts a private etcd
(v3) and measures, through the same etcd client: a full sync into the empty etcd, a reconcile with nothing to change,
and the same keys written as plain puts in 128-operation transactions (the floor). Then starts a real Celery worker
on the shared Redis and measures the lag from a committed change to its key being readable in etcd. Prints a Markdown
report (paste it into docs/benchmarks.md).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "dock2box_etcdbench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()

    from tests.services import Etcd, wait_until

    workdir = Path(tempfile.mkdtemp(prefix="d2b-etcdbench-"))
    etcd = Etcd(workdir).start()
    for statement in (f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", statement], check=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "dock2box.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
            "DJANGO_SECRET_KEY": "bench-only",
            "DOCK2BOX_VAR_DIR": str(workdir),
            "DOCK2BOX_ETCD_URL": etcd.url,
            "DOCK2BOX_ETCD_API": "v3",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
            "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/13",
            "DOCK2BOX_LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    seed(args.hosts)
    seeded = time.monotonic() - started

    from provisioning.mirror import sync
    from provisioning.mirror.store import DocumentChange

    store = sync.mirror_stores()[0]
    started = time.monotonic()
    full = sync.reconcile([store])
    full_seconds = time.monotonic() - started
    started = time.monotonic()
    idle = sync.reconcile([store])
    idle_seconds = time.monotonic() - started
    keys = {key: value for document in sync.desired_documents(None).values() for key, value in document.items()}
    etcd.wipe()
    started = time.monotonic()
    store.write([DocumentChange("/", {}, keys)])
    plain_seconds = time.monotonic() - started
    sync.reconcile([store])

    lags = measure_lag(args.changes, store, workdir, wait_until)
    etcd.stop()

    print(f"## etcd mirror ({datetime.now(UTC):%Y-%m-%d}, {args.hosts} hosts with 2 interfaces, etcd 3.4 v3 API)\n")
    print(f"Command: `.venv/bin/python bench/etcd_sync.py --hosts {args.hosts} --changes {args.changes}` "
          f"(seeding took {seeded:.0f} s)\n")  # fmt: skip
    print("| measure | result |\n|---|---|")
    print(f"| keys in the tree | {len(keys)} ({full.documents} documents) |")
    print(f"| full sync into an empty etcd | {full_seconds:.1f} s ({full.operations} writes) |")
    print(f"| plain batched puts of the same keys (128 per transaction) | {plain_seconds:.1f} s |")
    print(f"| full sync / plain puts | {full_seconds / plain_seconds:.2f} times |")
    print(f"| reconcile with nothing to change | {idle_seconds:.1f} s ({idle.operations} writes) |")
    print(f"| lag, committed change → visible in etcd, p50 | {statistics.median(lags) * 1000:.0f} ms |")
    print(f"| lag p99 ({len(lags)} single changes, worker running) | {percentile(lags, 99) * 1000:.0f} ms |")


def seed(count: int) -> None:
    from hosts.models import Host, Interface, Site, Subnet
    from images.models import Image, ImageVersion

    site = Site.objects.create(name="bench1", domain="bench.example.com", file_uri="http://files.bench.example.com")
    subnet = Subnet.objects.create(site=site, network="10.100.0.0/16", gateway="10.100.0.1")
    image = Image.objects.create(name="debian-12", type="docker")
    ImageVersion.objects.create(image=image, version="1", timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    hosts = Host.objects.bulk_create(
        [Host(fqdn=f"node{n:05d}.bench.example.com", site=site, image=image) for n in range(count)]
    )
    interfaces = []
    for n, host in enumerate(hosts):
        address = 0x0A640000 + 10 + n
        ip = f"{address >> 24}.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}"
        interfaces += [
            Interface(host=host, name="eth0", mac=f"52:54:01:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
                      ip=ip, subnet=subnet, netmask="255.255.0.0", gateway="10.100.0.1", primary=True),
            Interface(host=host, name="eth1", mac=f"52:54:02:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
                      dhcp=True),
        ]  # fmt: skip
    Interface.objects.bulk_create(interfaces, batch_size=5000)


def measure_lag(changes: int, store: object, workdir: Path, wait_until: object) -> list[float]:
    """Commit one change at a time with a worker running; time until etcd shows it."""
    from dock2box import celery_app
    from hosts.models import Host
    from hosts.services import host_update

    celery_app.conf.update(task_always_eager=False)
    log = (workdir / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "dock2box", "worker", "--concurrency", "2", "--loglevel", "INFO"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=log,
    )  # fmt: skip
    wait_until(lambda: "ready" in (workdir / "worker.log").read_text(), timeout=60, what="worker")  # type: ignore[operator]
    lags = []
    try:
        for number, host in enumerate(Host.objects.order_by("?")[:changes]):
            kopts = f"bench={number}"
            key = f"/host/{host.fqdn}/kopts"
            started = time.monotonic()
            host_update(host=host, data={"kopts": kopts})
            while store.read([key]).get(key) != kopts:  # type: ignore[attr-defined]
                time.sleep(0.002)
            lags.append(time.monotonic() - started)
    finally:
        worker.terminate()
        worker.wait(30)
    return lags


def percentile(values: list[float], rank: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(rank / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()

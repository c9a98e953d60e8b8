"""The short way in-process: microseconds per boot answered from the shared cache, known hosts and hosts in build mode.

    .venv/bin/python bench/boot_cached.py [--hosts 2000] [--rounds 3]

Runs this checkout's code (from any worktree: run it there) against the database `bench/boot_storm.py` seeds and
leaves (`dock2box_bench`, 10 % of hosts in build mode) and Redis on loopback as the shared cache: each MAC's script
is rendered and stored once, then answered from the cache `--rounds` times; the best round is printed. Without wrk,
gunicorn and the kernel's scheduling between them, two commits compare within a few percent on this machine (the
boot storm's request rates vary by a quarter from run to run).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "dock2box.settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/dock2box_bench",
        "DJANGO_SECRET_KEY": "bench-only",
        "DOCK2BOX_CACHE_URL": "redis://127.0.0.1:6379/15",
        "DOCK2BOX_PUBLIC_URL": "http://127.0.0.1:9",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DOCK2BOX_LOG_LEVEL": "WARNING",
        "DOCK2BOX_VAR_DIR": tempfile.mkdtemp(prefix="d2b-bench-"),
    }
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000, help="known hosts (and a tenth as many in build mode)")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()

    import django

    django.setup()
    from django.utils import timezone

    from hosts.models import Interface
    from provisioning.boot import scripts
    from provisioning.boot.menu import BootRequest

    portal = os.environ["DOCK2BOX_PUBLIC_URL"]
    groups = {
        "known": Interface.objects.filter(host__build=False, ip__isnull=False),
        "build": Interface.objects.filter(host__build=True, ip__isnull=False),
    }
    print(f"| MACs ({ROOT.name}) | µs per cached answer, best of {arguments.rounds} |\n|---|---|")
    for name, interfaces in groups.items():
        macs = list(
            interfaces.values_list("mac", flat=True)[: arguments.hosts if name == "known" else arguments.hosts // 10]
        )
        boots = [BootRequest(mac=mac, ip="", platform="pcbios") for mac in macs]
        for boot in boots:
            scripts.host_script(portal=portal, boot=boot, now=timezone.now(), details={})
        best = float("inf")
        for _ in range(arguments.rounds):
            started = time.perf_counter()
            answered = [scripts.cached_script(portal=portal, boot=boot, now=timezone.now()) for boot in boots]
            best = min(best, (time.perf_counter() - started) / len(boots))
            assert all(answered), "every script is answered from the cache"
        print(f"| {len(boots)} {name} | {best * 1e6:.0f} |")


if __name__ == "__main__":
    main()

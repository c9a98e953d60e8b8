"""Liveness and readiness: `/healthz` (the process answers) and `/readyz` (what it needs answers too).

Readiness checks the database always, and the broker and etcd when they are configured (the embedded default has
neither). Each check is short and bounded by a timeout, so a load balancer's probe never hangs.
"""

import time
import urllib.request
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

TIMEOUT = 2.0


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _broker() -> str:
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()
    return "redis"


def _etcd() -> str:
    with urllib.request.urlopen(f"{settings.DOCK2BOX_ETCD_URL.rstrip('/')}/health", timeout=TIMEOUT) as response:  # noqa: S310 - the configured etcd
        if b"true" not in response.read():
            raise RuntimeError("etcd reports itself unhealthy")
    return "etcd"


def checks() -> dict[str, Callable[[], str]]:
    """The components this process needs, by name."""
    needed: dict[str, Callable[[], str]] = {"database": _database}
    if settings.CELERY_BROKER_URL:
        needed["broker"] = _broker
    if settings.DOCK2BOX_ETCD_URL:
        needed["etcd"] = _etcd
    return needed


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    report: dict[str, dict[str, object]] = {}
    for name, check in checks().items():
        started = time.monotonic()
        try:
            detail = check()
            report[name] = {"ok": True, "detail": detail}
        except Exception as error:
            report[name] = {"ok": False, "detail": f"{type(error).__name__}: {error}"[:300]}
            if name == "database":
                connection.close()  # a broken connection must not stay in the pool
        report[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    ready = all(component["ok"] for component in report.values())
    down = [name for name, component in report.items() if not component["ok"]]
    return JsonResponse({"status": "ready" if ready else f"down: {', '.join(down)}", "components": report},
                        status=200 if ready else 503)  # fmt: skip

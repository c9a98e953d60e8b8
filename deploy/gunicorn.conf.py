"""gunicorn settings for the portal (`gunicorn dock2box.wsgi --config deploy/gunicorn.conf.py`)."""

import multiprocessing
import os

bind = os.environ.get("DOCK2BOX_BIND", "0.0.0.0:8000")
# Boot storms are many small requests: a few sync workers per core (see docs/benchmarks.md).
workers = int(os.environ.get("DOCK2BOX_WEB_WORKERS", 2 * multiprocessing.cpu_count() + 1))
backlog = 4096
timeout = 60
accesslog = "-"


def on_starting(server: object) -> None:
    """Refuse workers that cannot share the boot catalogue's cache; start with an empty metrics directory (counters of
    earlier runs must not add up with these)."""
    if workers > 1:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dock2box.settings")
        from django.conf import settings

        if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
            # Each worker would keep its own catalogue and serve menus other workers know are stale.
            raise SystemExit(
                f"dock2box: {workers} web workers need a shared cache: set DOCK2BOX_CACHE_URL (or CELERY_BROKER_URL) "
                "to a Redis URL, or run one worker (DOCK2BOX_WEB_WORKERS=1)."
            )
    directory = os.environ.get("DOCK2BOX_METRICS_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))


def child_exit(server: object, worker: object) -> None:
    """A worker that exits leaves its counters, not its live gauges (prometheus-client multiprocess mode)."""
    if os.environ.get("DOCK2BOX_METRICS_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]

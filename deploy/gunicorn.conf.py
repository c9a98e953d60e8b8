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
    """Start with an empty metrics directory: counters of earlier runs must not add up with these."""
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

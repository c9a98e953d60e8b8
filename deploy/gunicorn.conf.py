"""gunicorn settings for the portal (`gunicorn dock2box.wsgi --config deploy/gunicorn.conf.py`)."""

import multiprocessing
import os

bind = os.environ.get("DOCK2BOX_BIND", "0.0.0.0:8000")
# Boot storms are many small requests: a few sync workers per core (see docs/benchmarks.md).
workers = int(os.environ.get("DOCK2BOX_WEB_WORKERS", 2 * multiprocessing.cpu_count() + 1))
backlog = 4096
timeout = 60
accesslog = "-"

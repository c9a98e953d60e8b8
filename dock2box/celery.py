"""The Celery app. With no broker configured, tasks run in-process (see settings)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dock2box.settings")

app = Celery("dock2box")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

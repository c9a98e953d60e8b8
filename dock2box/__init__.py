"""Dock2Box: project wiring and the pieces every app shares."""

from dock2box.celery import app as celery_app

__all__ = ["celery_app"]

"""Reads of what every app shares: the history of who did what."""

from django.db import models
from django.db.models import QuerySet

from dock2box.models import History


def history_list() -> QuerySet[History]:
    """Every recorded change, newest first."""
    return History.objects.order_by("-time", "-id")


def history_of(*, obj: models.Model) -> QuerySet[History]:
    """Who did what to `obj`, newest first (its lines from before a rename or a delete included)."""
    return history_list().filter(kind=obj._meta.model_name, object_id=obj.pk)

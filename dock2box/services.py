"""Write helpers every app's services use: one way to validate and save a row."""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models

from dock2box.changes import record_change

M = TypeVar("M", bound=models.Model)


def model_save(instance: M) -> M:
    """Validate the row with every model rule and constraint (`full_clean`), save it, mark caches stale.

    Services record the mirrored documents they change themselves (`record_change`): they know old and new names.
    """
    _refuse_nul(instance)
    instance.full_clean()
    instance.save()
    record_change()
    return instance


def _refuse_nul(instance: models.Model) -> None:
    """No text field holds a NUL character: PostgreSQL cannot store one, and no value of ours needs it."""
    errors = {
        field.name: "Contains a NUL character (\\x00); remove it."
        for field in instance._meta.concrete_fields
        if isinstance(field, models.CharField | models.TextField)
        and "\x00" in str(getattr(instance, field.attname) or "")
    }
    if errors:
        raise ValidationError(errors, code="nul_character")


def model_delete(instance: models.Model) -> None:
    """Delete the row (and what cascades from it) and mark caches stale."""
    instance.delete()
    record_change()


def model_update(instance: M, *, data: Mapping[str, Any], fields: Iterable[str]) -> M:
    """Set the given fields from `data` (those present in it) and validate and save the row.

    Unknown keys in `data` are an error of the caller, not silently dropped.
    """
    allowed = set(fields)
    unknown = set(data) - allowed
    if unknown:
        raise TypeError(f"{type(instance).__name__} has no updatable fields {sorted(unknown)}")
    for name, value in data.items():
        setattr(instance, name, value)
    return model_save(instance)

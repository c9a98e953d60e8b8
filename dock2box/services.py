"""Write helpers every app's services use: one way to validate and save a row, one way to record who did it."""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models

from dock2box.actors import actor_current
from dock2box.models import History

M = TypeVar("M", bound=models.Model)


def model_save(instance: M) -> M:
    """Validate the row with every model rule and constraint (`full_clean`) and save it.

    Services say what they changed themselves (`record_change`): they know old and new names, and whether the change
    touches one host's boot scripts or everything.
    """
    _refuse_nul(instance)
    instance.full_clean()
    instance.save()
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


def model_delete(instance: models.Model, *, history: bool = False) -> None:
    """Delete the row (and what cascades from it); with `history`, record who deleted it. The service says what that
    changed (`record_change`)."""
    if history:
        history_record(obj=instance, action="deleted")
    instance.delete()


def model_update(instance: M, *, data: Mapping[str, Any], fields: Iterable[str], history: bool = False) -> M:
    """Set the given fields from `data` (those present in it) and validate and save the row.

    Unknown keys in `data` are an error of the caller, not silently dropped. With `history`, who did it is recorded:
    "created", or "changed" with the names of the `fields` whose value changed (values are not written down: some
    are secrets); nothing when nothing changed.
    """
    names = list(fields)
    unknown = set(data) - set(names)
    if unknown:
        raise TypeError(f"{type(instance).__name__} has no updatable fields {sorted(unknown)}")
    for name, value in data.items():
        setattr(instance, name, value)
    created = instance.pk is None
    changed = _changed_fields(instance, names) if history and not created else []
    model_save(instance)
    if history and (created or changed):
        history_record(obj=instance, action="created" if created else "changed", detail=", ".join(changed))
    return instance


def _changed_fields(instance: models.Model, names: list[str]) -> list[str]:
    """The names among `names` whose value on `instance` differs from its stored row."""
    attnames = [instance._meta.get_field(name).attname for name in names]  # type: ignore[union-attr]
    stored = type(instance)._default_manager.filter(pk=instance.pk).values(*attnames).first() or {}
    return [
        name for name, attname in zip(names, attnames, strict=True) if stored.get(attname) != getattr(instance, attname)
    ]


def history_record(*, obj: models.Model, action: str, detail: str = "") -> History:
    """Write down who (`actor_current()`) did what to `obj`; every service that changes the inventory calls this."""
    return History.objects.create(
        kind=obj._meta.model_name or "",
        object_id=obj.pk,
        name=str(obj)[:253],
        actor=actor_current()[:200],
        action=action[:60],
        detail=detail[:500],
    )


def secret_kept_at_home(
    instance: Any, data: Mapping[str, Any], *, destination: list[str], credential: str
) -> dict[str, Any]:
    """`data`, with `credential` emptied when the fields naming where it is sent (`destination`) change and none is
    given with them. The stored row is the reference: the admin sets a form's values on the instance before saving
    it (and keeps the stored secret where its box was left empty), the API passes them in `data`."""
    data = dict(data)
    stored = type(instance).objects.filter(pk=instance.pk).values(*destination, credential).first()
    if stored is None:
        return data
    moved = any(str(data.get(name, getattr(instance, name))) != str(stored[name]) for name in destination)
    given = data.get(credential) or getattr(instance, credential) != stored[credential]
    if moved and not given:
        data[credential] = ""
    return data

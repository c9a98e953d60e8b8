"""One error shape for /api/v2: a JSON object naming each field and the reason, never a 500 for bad input."""

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler


def protected_names(error: ProtectedError, most: int = 10) -> list[str]:
    """The names of what keeps a row from being deleted. Django loads them with deferred fields: one deleted meanwhile
    (a parallel request) is named by its kind and id instead of failing the answer."""
    names = set()
    for used in error.protected_objects:
        try:
            names.add(str(used))
        except ObjectDoesNotExist:
            names.add(f"{type(used).__name__} #{used.pk} (deleted meanwhile)")
    return sorted(names)[:most]


def _serializer_shaped(error: DjangoValidationError) -> dict[str, Any]:
    """A service's ValidationError shaped like a serializer's: field → messages, and a list item's messages (those
    carrying params `index` and `field`, e.g. a host's interfaces) nested under the item's index, as DRF nests them."""
    shaped: dict[str, Any] = as_serializer_error(error)
    for field, errors in getattr(error, "error_dict", {}).items():
        if errors and all(item.params and "index" in item.params for item in errors):
            nested: dict[str, dict[str, list[str]]] = {}
            for item in errors:
                params = item.params or {}
                key = "non_field_errors" if params["field"] == NON_FIELD_ERRORS else params["field"]
                nested.setdefault(str(params["index"]), {}).setdefault(key, []).append(str(params["message"]))
            shaped[field] = nested
    return shaped


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn model validation errors raised by services into 400s shaped like serializer errors."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_serializer_shaped(exc))
    elif isinstance(exc, ProtectedError):
        return Response(
            {"detail": f"Still in use by {', '.join(protected_names(exc))}; change or delete those first."},
            status=status.HTTP_409_CONFLICT,
        )
    elif isinstance(exc, DataError):
        # The database refused a value as sent (a NUL character in a lookup, a number out of range): the client's.
        return Response(
            {"detail": f"A value cannot be stored or looked up as sent: {str(exc).splitlines()[0]}"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, IntegrityError):
        # A race past full_clean's uniqueness checks: still the client's conflict, not a server error.
        return Response(
            {"detail": "The change conflicts with stored data (a duplicate?)."}, status=status.HTTP_409_CONFLICT
        )
    return drf_exception_handler(exc, context)

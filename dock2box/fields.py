"""Model fields shared by the apps."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from dock2box.validators import normalise_mac


class MACAddressField(models.CharField):
    """A MAC address, accepted in the usual spellings and stored as `aa:bb:cc:dd:ee:ff`."""

    description = "MAC address"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 17)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("max_length") == 17:
            del kwargs["max_length"]
        return name, path, args, kwargs

    def to_python(self, value: Any) -> str | None:
        value = super().to_python(value)
        if value in (None, ""):
            return value
        return normalise_mac(value)

    def get_prep_value(self, value: Any) -> Any:
        # Lookups normalise too (filter(mac="AA-BB-...") finds the row); a partial MAC in a search stays as typed.
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        try:
            return normalise_mac(value)
        except ValidationError:
            return value

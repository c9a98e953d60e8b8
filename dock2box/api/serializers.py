"""Serializers shared by the apps' APIs: the MAC address field, the history of who did what."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from dock2box.models import History
from dock2box.validators import normalise_mac


class MACAddressField(serializers.CharField):
    """A MAC address in any usual spelling, answered as `aa:bb:cc:dd:ee:ff`."""

    def to_internal_value(self, data: Any) -> str:
        try:
            return normalise_mac(super().to_internal_value(data))
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from error


class HistorySerializer(serializers.ModelSerializer):
    class Meta:
        model = History
        fields = ["time", "kind", "object_id", "name", "actor", "action", "detail"]

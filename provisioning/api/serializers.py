from typing import Any

from rest_framework import serializers

from hosts.choices import PowerAction
from hosts.models import Host, Site
from images.models import Image
from provisioning.catalogue.selectors import pxe_menu_items
from provisioning.catalogue.services import (
    boot_defaults_update,
    boot_template_create,
    boot_template_update,
    pxe_menu_create,
    pxe_menu_item_create,
    pxe_menu_item_update,
    pxe_menu_update,
)
from provisioning.models import BootDefaults, BootTemplate, Build, BuildEvent, DiscoveredHost, PxeMenu, PxeMenuItem


class PxeMenuItemSerializer(serializers.ModelSerializer):
    menu = serializers.SlugRelatedField(slug_field="name", queryset=PxeMenu.objects.all())

    class Meta:
        model = PxeMenuItem
        fields = ["id", "url", "menu", "key", "label", "commands", "position"]
        extra_kwargs = {"url": {"view_name": "pxemenuitem-detail"}}

    def create(self, validated_data: dict[str, Any]) -> PxeMenuItem:
        return pxe_menu_item_create(data=validated_data)

    def update(self, instance: PxeMenuItem, validated_data: dict[str, Any]) -> PxeMenuItem:
        return pxe_menu_item_update(item=instance, data=validated_data)


class PxeMenuSerializer(serializers.ModelSerializer):
    default_item = serializers.SlugRelatedField(
        slug_field="key", queryset=PxeMenuItem.objects.all(), allow_null=True, required=False
    )
    items = serializers.SlugRelatedField(slug_field="key", many=True, read_only=True)

    class Meta:
        model = PxeMenu
        fields = ["id", "url", "name", "title", "timeout", "default_item", "theme", "items"]
        extra_kwargs = {"url": {"view_name": "pxemenu-detail"}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The default item is looked up among this menu's own items (keys repeat across menus).
        menu = self.instance if isinstance(self.instance, PxeMenu) else None
        self.fields["default_item"].queryset = pxe_menu_items(menu=menu)  # type: ignore[attr-defined]

    def create(self, validated_data: dict[str, Any]) -> PxeMenu:
        return pxe_menu_create(data=validated_data)

    def update(self, instance: PxeMenu, validated_data: dict[str, Any]) -> PxeMenu:
        return pxe_menu_update(menu=instance, data=validated_data)


class BootDefaultsSerializer(serializers.ModelSerializer):
    pxe_menu = serializers.SlugRelatedField(
        slug_field="name", queryset=PxeMenu.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = BootDefaults
        fields = [
            "pxe_menu", "menu_timeout", "build_timeout", "submenu_timeout", "menu_name", "submenu_name",
            "boot_version", "domain",
        ]  # fmt: skip

    def update(self, instance: BootDefaults, validated_data: dict[str, Any]) -> BootDefaults:
        return boot_defaults_update(data=validated_data)


class BuildEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = BuildEvent
        fields = ["time", "stage", "progress", "message"]


class BuildSerializer(serializers.ModelSerializer):
    """A build with its latest progress and message; its events are at `/api/v2/builds/<id>/events/`, paged."""

    host = serializers.SlugRelatedField(slug_field="fqdn", read_only=True)
    event_count = serializers.IntegerField(read_only=True)
    progress = serializers.IntegerField(read_only=True, allow_null=True)
    last_message = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Build
        fields = [
            "id", "url", "host", "state", "image_version", "created", "first_boot", "started", "finished",
            "last_activity", "bootloader_started", "booted", "booted_digest", "client_address", "chain", "secure_boot",
            "refusals", "last_refusal", "event_count", "progress", "last_message",
        ]  # fmt: skip
        extra_kwargs = {"url": {"view_name": "build-detail"}}


class DiscoveredHostSerializer(serializers.ModelSerializer):
    class Meta:
        model = DiscoveredHost
        fields = [
            "id",
            "url",
            "mac",
            "ip",
            "uuid",
            "serial",
            "asset",
            "platform",
            "buildarch",
            "first_seen",
            "last_seen",
        ]
        extra_kwargs = {"url": {"view_name": "discoveredhost-detail"}}


class BootTemplateSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="fqdn", queryset=Host.objects.all(), allow_null=True, required=False)
    image = serializers.SlugRelatedField(
        slug_field="name", queryset=Image.objects.all(), allow_null=True, required=False
    )
    site = serializers.SlugRelatedField(slug_field="name", queryset=Site.objects.all(), allow_null=True, required=False)

    class Meta:
        model = BootTemplate
        fields = ["id", "url", "name", "kind", "content", "host", "image", "site"]
        extra_kwargs = {"url": {"view_name": "boottemplate-detail"}}
        validators: list[Any] = []

    def create(self, validated_data: dict[str, Any]) -> BootTemplate:
        return boot_template_create(data=validated_data)

    def update(self, instance: BootTemplate, validated_data: dict[str, Any]) -> BootTemplate:
        return boot_template_update(template=instance, data=validated_data)


class MirrorStatusSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    api = serializers.CharField()
    backlog = serializers.IntegerField()
    oldest_change = serializers.DateTimeField(allow_null=True)
    lag_seconds = serializers.FloatField()
    last_success = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    last_error_at = serializers.DateTimeField(allow_null=True)


class PowerRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=PowerAction.choices,
        help_text="status, on, off, cycle, or reinstall (build mode, then a cycle; on when the host is off).",
    )


class PowerBulkRequestSerializer(PowerRequestSerializer):
    hosts = serializers.ListField(
        child=serializers.CharField(max_length=253), min_length=1, max_length=1000, help_text="Host FQDNs."
    )


class PowerBulkResultSerializer(serializers.Serializer):
    queued = serializers.ListField(child=serializers.CharField(), help_text="Hosts whose action was queued.")
    refused = serializers.DictField(child=serializers.CharField(), help_text="Host → why it was refused.")

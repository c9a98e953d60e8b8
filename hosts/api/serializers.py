from typing import Any

from django.utils import timezone
from rest_framework import serializers

from dock2box.api.serializers import MACAddressField
from hosts import selectors, services
from hosts.models import BMC_SECRETS, SITE_SECRETS, Bmc, Host, Interface, Site, Subnet
from images.choices import ImageType
from images.models import LATEST, Image
from images.selectors import image_version_named


class WriteOnlySecretsSerializer(serializers.ModelSerializer):
    """A model whose `secrets` fields are write-only (Meta's extra_kwargs say so): set or replace one by sending it,
    clear it with "", leave it out to keep it; `secrets_set` says which hold a value."""

    secrets: list[str] = []
    secrets_set = serializers.SerializerMethodField()

    def get_secrets_set(self, obj: Any) -> list[str]:
        """The names of the secrets that hold a value (the values are never read back)."""
        return [name for name in self.secrets if getattr(obj, name)]


class SiteSerializer(WriteOnlySecretsSerializer):
    """A site; its registry credentials, root password hash and SSH keys are write-only secrets."""

    secrets = SITE_SECRETS
    image = serializers.SlugRelatedField(
        slug_field="name", queryset=Image.objects.exclude(type=ImageType.BOOT), allow_null=True, required=False
    )

    class Meta:
        model = Site
        fields = [
            "id", "url", "name", "description", "domain", "dns_servers", "ntp_servers", "file_uri", "registry",
            "image", "boot_version", "pxe_menu", "secure_boot", *SITE_SECRETS, "secrets_set", "created", "updated",
        ]  # fmt: skip
        extra_kwargs = {"url": {"view_name": "site-detail"}, **{name: {"write_only": True} for name in SITE_SECRETS}}

    def create(self, validated_data: dict[str, Any]) -> Site:
        return services.site_create(data=validated_data)

    def update(self, instance: Site, validated_data: dict[str, Any]) -> Site:
        return services.site_update(site=instance, data=validated_data)


class SubnetSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="name", queryset=Site.objects.all())
    netmask = serializers.CharField(read_only=True)

    class Meta:
        model = Subnet
        fields = [
            "id", "url", "network", "netmask", "site", "description", "gateway", "vlan", "dns_servers", "dhcp",
            "reserved", "created", "updated",
        ]  # fmt: skip
        extra_kwargs = {"url": {"view_name": "subnet-detail"}}

    def create(self, validated_data: dict[str, Any]) -> Subnet:
        return services.subnet_create(data=validated_data)

    def update(self, instance: Subnet, validated_data: dict[str, Any]) -> Subnet:
        return services.subnet_update(subnet=instance, data=validated_data)


class HostInterfaceSerializer(serializers.ModelSerializer):
    """An interface inside a host document (uniqueness is checked by the service, across all hosts)."""

    mac = MACAddressField()
    subnet = serializers.SlugRelatedField(
        slug_field="network", queryset=Subnet.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = Interface
        fields = ["name", "mac", "ip", "subnet", "netmask", "gateway", "dhcp", "primary"]
        extra_kwargs = {"ip": {"validators": []}}
        validators: list[Any] = []


class HostSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="name", queryset=Site.objects.all(), allow_null=True, required=False)
    image = serializers.SlugRelatedField(
        slug_field="name", queryset=Image.objects.exclude(type=ImageType.BOOT), allow_null=True, required=False
    )
    version = serializers.CharField(
        source="image_version", allow_null=True, required=False, help_text="A version of the image, or 'latest'."
    )
    interfaces = HostInterfaceSerializer(many=True, required=False)
    deployment = serializers.SerializerMethodField(
        help_text="deployed, awaiting its first boot, not reporting (no first-boot report in time), or empty."
    )

    class Meta:
        model = Host
        fields = [
            "id", "url", "fqdn", "site", "image", "version", "boot_version", "build", "status", "deployment",
            "installed", "deployed_digest", "boot_seconds", "debug", "gpt", "kexec", "secure_boot", "volmgt",
            "legacynet", "kopts", "pxe_menu", "serial", "uuid", "asset_tag", "labels", "interfaces", "last_seen",
            "created", "updated",
        ]  # fmt: skip
        read_only_fields = ["build", "status", "installed", "deployed_digest", "boot_seconds", "last_seen"]
        extra_kwargs = {"url": {"view_name": "host-detail"}}

    def get_deployment(self, host: Host) -> str:
        return selectors.host_deployment(host=host, now=timezone.now())

    def to_representation(self, instance: Host) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["version"] = instance.image_version.version if instance.image_version_id else LATEST
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "image_version" in attrs:
            image = attrs.get("image", self.instance.image if self.instance else None)
            version = attrs["image_version"]
            if version in (None, "", LATEST):
                attrs["image_version"] = None
            elif image is None:
                raise serializers.ValidationError({"version": "Give the image this is a version of."})
            else:
                attrs["image_version"] = image_version_named(image=image, name=version)
                if attrs["image_version"] is None:
                    raise serializers.ValidationError({"version": f"Image {image} has no version '{version}'."})
        elif self.instance is not None and "image" in attrs and attrs["image"] != self.instance.image:
            attrs["image_version"] = None  # a new image starts at its latest version
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Host:
        interfaces = validated_data.pop("interfaces", ())
        return services.host_create(data=validated_data, interfaces=interfaces)

    def update(self, instance: Host, validated_data: dict[str, Any]) -> Host:
        interfaces = validated_data.pop("interfaces", None)
        return services.host_update(host=instance, data=validated_data, interfaces=interfaces)


class InterfaceSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="fqdn", queryset=Host.objects.all())
    mac = MACAddressField()
    subnet = serializers.SlugRelatedField(
        slug_field="network", queryset=Subnet.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = Interface
        fields = ["id", "url", "host", "name", "mac", "ip", "subnet", "netmask", "gateway", "dhcp", "primary"]
        extra_kwargs = {"url": {"view_name": "interface-detail"}, "ip": {"validators": []}}
        validators: list[Any] = []

    def create(self, validated_data: dict[str, Any]) -> Interface:
        return services.interface_create(data=validated_data)

    def update(self, instance: Interface, validated_data: dict[str, Any]) -> Interface:
        return services.interface_update(interface=instance, data=validated_data)


class BmcSerializer(WriteOnlySecretsSerializer):
    """A host's BMC. The credentials are write-only secrets; the power fields are written by the power actions
    (`/api/v2/hosts/<id>/power/`)."""

    secrets = BMC_SECRETS
    host = serializers.SlugRelatedField(slug_field="fqdn", queryset=Host.objects.all())

    class Meta:
        model = Bmc
        fields = [
            "id", "url", "host", "protocol", "address", "port", *BMC_SECRETS, "secrets_set", "power_state",
            "power_checked", "pending", "pending_since", "last_action", "last_result", "last_result_at",
        ]  # fmt: skip
        read_only_fields = [
            "power_state", "power_checked", "pending", "pending_since", "last_action", "last_result", "last_result_at",
        ]  # fmt: skip
        extra_kwargs = {"url": {"view_name": "bmc-detail"}, **{name: {"write_only": True} for name in BMC_SECRETS}}

    def create(self, validated_data: dict[str, Any]) -> Bmc:
        return services.bmc_create(data=validated_data)

    def update(self, instance: Bmc, validated_data: dict[str, Any]) -> Bmc:
        return services.bmc_update(bmc=instance, data=validated_data)

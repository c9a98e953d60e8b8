from typing import Any

from rest_framework import serializers

from images import services
from images.models import Image, ImageVersion


class ImageSerializer(serializers.ModelSerializer):
    versions = serializers.SlugRelatedField(slug_field="version", many=True, read_only=True)

    class Meta:
        model = Image
        fields = [
            "id", "url", "name", "type", "description", "registry", "repository", "file_url", "boot_version", "kopts",
            "debug", "gpt", "kexec", "uefi", "volmgt", "naming_scheme", "main_script", "post_script", "versions",
            "created", "updated",
        ]  # fmt: skip
        extra_kwargs = {"url": {"view_name": "image-detail"}}

    def create(self, validated_data: dict[str, Any]) -> Image:
        return services.image_create(data=validated_data)

    def update(self, instance: Image, validated_data: dict[str, Any]) -> Image:
        return services.image_update(image=instance, data=validated_data)


class ImageVersionSerializer(serializers.ModelSerializer):
    image = serializers.SlugRelatedField(slug_field="name", queryset=Image.objects.all())

    class Meta:
        model = ImageVersion
        fields = [
            "id", "url", "image", "version", "timestamp", "digest", "size", "main_script", "kernel", "initrd",
            "kernel_url", "initrd_url", "created",
        ]  # fmt: skip
        extra_kwargs = {"url": {"view_name": "imageversion-detail"}}

    def create(self, validated_data: dict[str, Any]) -> ImageVersion:
        return services.image_version_create(data=validated_data)

    def update(self, instance: ImageVersion, validated_data: dict[str, Any]) -> ImageVersion:
        return services.image_version_update(version=instance, data=validated_data)

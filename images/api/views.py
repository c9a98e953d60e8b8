from rest_framework import viewsets

from images import selectors, services
from images.api.serializers import ImageSerializer, ImageVersionSerializer
from images.filtersets import ImageFilterSet, ImageVersionFilterSet
from images.models import Image, ImageVersion


class ImageViewSet(viewsets.ModelViewSet):
    """Images: docker, file and boot."""

    queryset = selectors.image_list()
    serializer_class = ImageSerializer
    filterset_class = ImageFilterSet
    ordering_fields = ["name", "type", "created", "updated"]

    def perform_destroy(self, instance: Image) -> None:
        services.image_delete(image=instance)


class ImageVersionViewSet(viewsets.ModelViewSet):
    """Versions (tags) of images."""

    queryset = selectors.image_version_list()
    serializer_class = ImageVersionSerializer
    filterset_class = ImageVersionFilterSet
    ordering_fields = ["image__name", "version", "timestamp", "created"]

    def perform_destroy(self, instance: ImageVersion) -> None:
        services.image_version_delete(version=instance)

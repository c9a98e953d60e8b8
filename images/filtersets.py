import django_filters

from images.choices import ImageType
from images.models import Image, ImageVersion


class ImageFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    type = django_filters.ChoiceFilter(choices=ImageType.choices)

    class Meta:
        model = Image
        fields = ["name", "type"]


class ImageVersionFilterSet(django_filters.FilterSet):
    image = django_filters.CharFilter(field_name="image__name")
    version = django_filters.CharFilter()

    class Meta:
        model = ImageVersion
        fields = ["image", "version"]

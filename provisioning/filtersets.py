import django_filters

from provisioning.choices import BuildState
from provisioning.models import Build, PxeMenuItem


class PxeMenuItemFilterSet(django_filters.FilterSet):
    menu = django_filters.CharFilter(field_name="menu__name")

    class Meta:
        model = PxeMenuItem
        fields = ["menu", "key"]


class BuildFilterSet(django_filters.FilterSet):
    host = django_filters.CharFilter(field_name="host__fqdn")
    state = django_filters.ChoiceFilter(choices=BuildState.choices)

    class Meta:
        model = Build
        fields = ["host", "state"]

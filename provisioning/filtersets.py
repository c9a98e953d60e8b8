import django_filters

from dock2box.filters import IPAddressFilter
from hosts.filtersets import filter_mac
from provisioning.choices import BuildState
from provisioning.models import Build, DiscoveredHost, PxeMenuItem


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


class DiscoveredHostFilterSet(django_filters.FilterSet):
    mac = django_filters.CharFilter(field_name="mac", method=filter_mac, label="MAC address")
    ip = IPAddressFilter()

    class Meta:
        model = DiscoveredHost
        fields = ["mac", "ip", "serial", "platform"]

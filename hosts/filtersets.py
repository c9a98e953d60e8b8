from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from dock2box.filters import IPAddressFilter
from dock2box.validators import normalise_mac
from hosts.choices import HostStatus, PowerState
from hosts.models import Bmc, Host, Interface, Site, Subnet


def filter_mac(queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
    try:
        mac = normalise_mac(value)
    except ValidationError:
        return queryset.none()
    return queryset.filter(**{name: mac}).distinct()


class SiteFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()

    class Meta:
        model = Site
        fields = ["name"]


class SubnetFilterSet(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__name")
    network = django_filters.CharFilter()
    vlan = django_filters.NumberFilter()

    class Meta:
        model = Subnet
        fields = ["site", "network", "vlan", "dhcp"]


class HostFilterSet(django_filters.FilterSet):
    hostname = django_filters.CharFilter(field_name="fqdn", lookup_expr="icontains", label="Host name contains")
    site = django_filters.CharFilter(field_name="site__name")
    image = django_filters.CharFilter(field_name="image__name")
    status = django_filters.ChoiceFilter(choices=HostStatus.choices)
    mac = django_filters.CharFilter(field_name="interfaces__mac", method=filter_mac, label="MAC address")
    ip = IPAddressFilter(field_name="interfaces__ip", distinct=True, label="IP address")
    serial = django_filters.CharFilter()

    class Meta:
        model = Host
        fields = ["hostname", "site", "image", "build", "status", "mac", "ip", "serial"]


class InterfaceFilterSet(django_filters.FilterSet):
    host = django_filters.CharFilter(field_name="host__fqdn")
    mac = django_filters.CharFilter(field_name="mac", method=filter_mac)
    ip = IPAddressFilter()
    subnet = django_filters.CharFilter(field_name="subnet__network")

    class Meta:
        model = Interface
        fields = ["host", "mac", "ip", "subnet", "primary", "dhcp"]


class BmcFilterSet(django_filters.FilterSet):
    host = django_filters.CharFilter(field_name="host__fqdn")
    power_state = django_filters.ChoiceFilter(choices=PowerState.choices)

    class Meta:
        model = Bmc
        fields = ["host", "address", "power_state", "pending"]

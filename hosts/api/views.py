from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from dock2box.api.serializers import HistorySerializer
from dock2box.selectors import history_of
from hosts import selectors, services
from hosts.api.serializers import (
    BmcSerializer,
    HostSerializer,
    InterfaceSerializer,
    SiteSerializer,
    SubnetSerializer,
)
from hosts.filtersets import BmcFilterSet, HostFilterSet, InterfaceFilterSet, SiteFilterSet, SubnetFilterSet
from hosts.models import Bmc, Host, Interface, Site, Subnet


class SiteViewSet(viewsets.ModelViewSet):
    """Sites: domain, DNS, file server and registry of a location."""

    queryset = selectors.site_list()
    serializer_class = SiteSerializer
    filterset_class = SiteFilterSet
    ordering_fields = ["name", "created", "updated"]

    def perform_destroy(self, instance: Site) -> None:
        services.site_delete(site=instance)


class SubnetViewSet(viewsets.ModelViewSet):
    """Subnets (IPv4 and IPv6) of the sites."""

    queryset = selectors.subnet_list()
    serializer_class = SubnetSerializer
    filterset_class = SubnetFilterSet
    ordering_fields = ["network", "site__name", "vlan", "created"]

    def perform_destroy(self, instance: Subnet) -> None:
        services.subnet_delete(subnet=instance)

    @extend_schema(
        request=None,
        responses=inline_serializer("NextFreeIp", {"ip": serializers.IPAddressField(allow_null=True)}),
    )
    @action(detail=True, methods=["get"], url_path="next-free-ip")
    def next_free_ip(self, request: Request, pk: str | None = None) -> Response:
        """The lowest address of the subnet that is neither used, reserved nor the gateway (null when full)."""
        return Response({"ip": selectors.subnet_next_free_ip(subnet=self.get_object())})


class HostViewSet(viewsets.ModelViewSet):
    """Hosts with their interfaces. Build mode changes through the enter-build and cancel-build actions."""

    queryset = selectors.host_list()
    serializer_class = HostSerializer
    filterset_class = HostFilterSet
    ordering_fields = ["fqdn", "status", "last_seen", "created", "updated"]

    def perform_destroy(self, instance: Host) -> None:
        services.host_delete(host=instance)

    @extend_schema(responses=HistorySerializer(many=True), filters=False)
    @action(detail=True, filter_backends=[])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Who did what to the host (edits, interfaces, build mode, installs), newest first, a page at a time."""
        page = self.paginate_queryset(history_of(obj=self.get_object()))
        return self.get_paginated_response(HistorySerializer(page, many=True).data)


class InterfaceViewSet(viewsets.ModelViewSet):
    """Network interfaces of hosts; exactly one per host is primary (the boot NIC)."""

    queryset = selectors.interface_list()
    serializer_class = InterfaceSerializer
    filterset_class = InterfaceFilterSet
    ordering_fields = ["host__fqdn", "name", "mac", "ip"]

    def perform_destroy(self, instance: Interface) -> None:
        services.interface_delete(interface=instance)


class BmcViewSet(viewsets.ModelViewSet):
    """Hosts' BMCs (one per host): address, port, protocol and write-only credentials; power state as last seen."""

    queryset = selectors.bmc_list()
    serializer_class = BmcSerializer
    filterset_class = BmcFilterSet
    ordering_fields = ["host__fqdn", "address", "power_state"]

    def perform_destroy(self, instance: Bmc) -> None:
        services.bmc_delete(bmc=instance)

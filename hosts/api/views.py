from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.parsers import BaseParser
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
from hosts.csv_io import hosts_csv
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


class CsvParser(BaseParser):
    """A CSV file as text (UTF-8, with or without a byte-order mark)."""

    media_type = "text/csv"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> str:
        try:
            return stream.read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ParseError(f"The file is not UTF-8: {error}") from None


class CsvImportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class HostViewSet(viewsets.ModelViewSet):
    """Hosts with their interfaces. Build mode changes through the enter-build and cancel-build actions."""

    queryset = selectors.host_list()
    serializer_class = HostSerializer
    filterset_class = HostFilterSet
    ordering_fields = ["fqdn", "status", "last_seen", "created", "updated"]

    def perform_destroy(self, instance: Host) -> None:
        services.host_delete(host=instance)

    @extend_schema(
        methods=["GET"], responses={(200, "text/csv"): OpenApiTypes.STR}, description="The hosts (filtered) as CSV."
    )
    @extend_schema(
        methods=["POST"],
        request={"text/csv": OpenApiTypes.STR},
        responses={200: CsvImportSerializer},
        filters=False,
        description="Create or update the hosts of a CSV file, all or nothing; a 400 names every bad line.",
    )
    @action(detail=False, methods=["get", "post"], url_path="csv", parser_classes=[CsvParser])
    def csv(self, request: Request) -> HttpResponse | Response:
        """Hosts with their interfaces as CSV, one row per interface (docs/operations.md)."""
        if request.method == "GET":
            text = hosts_csv(self.filter_queryset(self.get_queryset()))
            response = HttpResponse(text, content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="hosts.csv"'
            return response
        if not request.user.has_perms(["hosts.add_host", "hosts.change_host"]):
            raise PermissionDenied("Importing hosts needs the add and change permissions on hosts.")
        if not isinstance(request.data, str):  # no body: DRF's empty data, not the parser's text
            raise ParseError("Send the CSV file as the request body, with Content-Type: text/csv.")
        created, updated = services.hosts_import_csv(text=request.data)
        return Response({"created": created, "updated": updated})

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

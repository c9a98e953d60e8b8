from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from dock2box.api.permissions import ModelPermissions
from dock2box.http import portal_url
from hosts.api.serializers import BmcSerializer
from hosts.models import Host
from hosts.selectors import bmc_list, host_list
from hosts.tasks import image_version_resolve
from images.registry import RegistryError
from images.selectors import image_version_list
from provisioning.api.serializers import (
    BootDefaultsSerializer,
    BootTemplateSerializer,
    BuildEventSerializer,
    BuildSerializer,
    DiscoveredHostSerializer,
    MirrorStatusSerializer,
    PowerBulkRequestSerializer,
    PowerBulkResultSerializer,
    PowerRequestSerializer,
    PxeMenuItemSerializer,
    PxeMenuSerializer,
)
from provisioning.builds.configs import FORMATS, host_config_render
from provisioning.builds.selectors import build_events, build_list
from provisioning.builds.services import host_cancel_build, host_enter_build
from provisioning.catalogue.selectors import (
    boot_defaults,
    boot_defaults_list,
    boot_template_list,
    pxe_menu_item_list,
    pxe_menu_list,
)
from provisioning.catalogue.services import boot_template_delete, pxe_menu_delete, pxe_menu_item_delete
from provisioning.discovery.selectors import discovered_host_list
from provisioning.discovery.services import discovered_host_delete
from provisioning.filtersets import BuildFilterSet, DiscoveredHostFilterSet, PxeMenuItemFilterSet
from provisioning.mirror.selectors import mirror_state_list, mirror_status
from provisioning.models import BootDefaults, BootTemplate, DiscoveredHost, PxeMenu, PxeMenuItem
from provisioning.power.services import power_request


class PxeMenuViewSet(viewsets.ModelViewSet):
    """PXE menus; their items are edited at /api/v2/pxe-menu-items/."""

    queryset = pxe_menu_list()
    serializer_class = PxeMenuSerializer
    filterset_fields = ["name", "theme"]
    ordering_fields = ["name"]

    def perform_destroy(self, instance: PxeMenu) -> None:
        pxe_menu_delete(menu=instance)


class PxeMenuItemViewSet(viewsets.ModelViewSet):
    """Items of PXE menus: a label and the iPXE commands it runs."""

    queryset = pxe_menu_item_list()
    serializer_class = PxeMenuItemSerializer
    filterset_class = PxeMenuItemFilterSet
    ordering_fields = ["menu__name", "position", "key"]

    def perform_destroy(self, instance: PxeMenuItem) -> None:
        pxe_menu_item_delete(item=instance)


class BootDefaultsView(generics.RetrieveUpdateAPIView):
    """The global boot defaults (a single document)."""

    queryset = boot_defaults_list()
    serializer_class = BootDefaultsSerializer

    def get_object(self) -> BootDefaults:
        defaults = boot_defaults()
        self.check_object_permissions(self.request, defaults)
        return defaults


class BuildViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Install attempts of hosts and their progress events (read-only)."""

    queryset = build_list()
    serializer_class = BuildSerializer
    filterset_class = BuildFilterSet
    ordering_fields = ["created", "state"]

    @extend_schema(responses=BuildEventSerializer(many=True), filters=False)
    @action(detail=True, filter_backends=[])
    def events(self, request: Request, pk: str | None = None) -> Response:
        """The build's progress events, oldest first, a page at a time."""
        page = self.paginate_queryset(build_events(build=self.get_object()))
        return self.get_paginated_response(BuildEventSerializer(page, many=True).data)


class HostBuildPermissions(ModelPermissions):
    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class HostEnterBuildView(generics.GenericAPIView):
    """Put the host in build mode: it installs its image at its next PXE boot."""

    queryset = host_list()
    serializer_class = BuildSerializer
    permission_classes = [HostBuildPermissions]

    @extend_schema(request=None, responses=BuildSerializer)
    def post(self, request: Request, pk: int) -> Response:
        build = host_enter_build(host=self.get_object())
        shown = build_list().get(pk=build.pk)
        return Response(BuildSerializer(shown, context=self.get_serializer_context()).data)


class HostCancelBuildView(generics.GenericAPIView):
    """Take the host out of build mode; its open build is cancelled (204 when it had none)."""

    queryset = host_list()
    serializer_class = BuildSerializer
    permission_classes = [HostBuildPermissions]

    @extend_schema(
        request=None,
        responses={200: BuildSerializer, 204: OpenApiResponse(description="The host had no open build.")},
    )
    def post(self, request: Request, pk: int) -> Response:
        build = host_cancel_build(host=self.get_object())
        if build is None:
            return Response(status=204)
        shown = build_list().get(pk=build.pk)
        return Response(BuildSerializer(shown, context=self.get_serializer_context()).data)


class HostPowerView(generics.GenericAPIView):
    """The host's power through its BMC: GET what the BMC said last; POST `{"action": ...}` queues an action (202).

    The outcome (done, or the BMC's error in one line) shows in `last_result` once the worker has run it.
    """

    queryset = host_list()
    serializer_class = PowerRequestSerializer
    permission_classes = [HostBuildPermissions]

    def _shown(self, host: Host) -> Any:
        bmc = bmc_list().filter(host=host).first()
        if bmc is None:
            raise NotFound(f"{host.fqdn} has no BMC.")
        return BmcSerializer(bmc, context=self.get_serializer_context()).data

    @extend_schema(responses=BmcSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(self._shown(self.get_object()))

    @extend_schema(request=PowerRequestSerializer, responses={202: BmcSerializer})
    def post(self, request: Request, pk: int) -> Response:
        host = self.get_object()
        asked = self.get_serializer(data=request.data)
        asked.is_valid(raise_exception=True)
        power_request(host=host, action=asked.validated_data["action"])
        return Response(self._shown(host), status=202)


class PowerBulkView(generics.GenericAPIView):
    """One power action for a list of hosts (`{"action": ..., "hosts": [fqdn, ...]}`): 202 with the hosts queued
    and, per host, why one was refused; 400 when none was queued."""

    queryset = host_list()
    serializer_class = PowerBulkRequestSerializer
    permission_classes = [HostBuildPermissions]

    @extend_schema(responses={202: PowerBulkResultSerializer, 400: PowerBulkResultSerializer})
    def post(self, request: Request) -> Response:
        asked = self.get_serializer(data=request.data)
        asked.is_valid(raise_exception=True)
        names = list(dict.fromkeys(asked.validated_data["hosts"]))
        hosts = {host.fqdn: host for host in host_list().filter(fqdn__in=names)}
        queued: list[str] = []
        refused: dict[str, str] = {}
        for name in names:
            if name not in hosts:
                refused[name] = "No such host."
                continue
            try:
                power_request(host=hosts[name], action=asked.validated_data["action"])
                queued.append(name)
            except ValidationError as error:
                refused[name] = " ".join(error.messages)
        return Response({"queued": queued, "refused": refused}, status=202 if queued else 400)


class DiscoveredHostViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """MACs that PXE-booted unknown (read and delete; they are recorded by the boot endpoints)."""

    queryset = discovered_host_list()
    serializer_class = DiscoveredHostSerializer
    filterset_class = DiscoveredHostFilterSet
    ordering_fields = ["last_seen", "first_seen", "mac"]

    def perform_destroy(self, instance: DiscoveredHost) -> None:
        discovered_host_delete(discovered=instance)


class BootTemplateViewSet(viewsets.ModelViewSet):
    """Kickstart, preseed and cloud-init templates, chosen host → image → site → default."""

    queryset = boot_template_list()
    serializer_class = BootTemplateSerializer
    filterset_fields = ["kind", "name"]
    ordering_fields = ["name", "kind"]

    def perform_destroy(self, instance: BootTemplate) -> None:
        boot_template_delete(template=instance)


class HostConfigPreviewView(generics.GenericAPIView):
    """The host's installer config as its installer would get it, with the secrets masked.

    `?type=` names the format (DRF keeps `?format=` for its own renderers).
    """

    queryset = host_list()
    query_params = ["type"]

    @extend_schema(
        parameters=[OpenApiParameter("type", str, enum=FORMATS, default="env")],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        fmt = request.query_params.get("type", "env")
        return host_config_render(host=self.get_object(), build=None, fmt=fmt, portal=portal_url(request)).response()


class MirrorStatusView(generics.GenericAPIView):
    """The etcd mirror: on or off, the outbox backlog and lag, the last successful sync and the last error."""

    queryset = mirror_state_list()

    @extend_schema(responses=MirrorStatusSerializer)
    def get(self, request: Request) -> Response:
        status = mirror_status()
        return Response(MirrorStatusSerializer({**status.__dict__, "lag_seconds": status.lag_seconds}).data)


class ImageVersionResolvePermissions(ModelPermissions):
    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class ImageVersionResolveView(generics.GenericAPIView):
    """Ask the registry what this docker image version's tag points at (in the worker); 202 when queued."""

    queryset = image_version_list()
    permission_classes = [ImageVersionResolvePermissions]
    metadata_class = None  # no serializer to describe: OPTIONS is a 405

    @extend_schema(
        request=None,
        responses={202: None, 424: OpenApiResponse(description="Run in-process: the registry's error.")},
    )
    def post(self, request: Request, pk: int) -> Response:
        version = self.get_object()
        try:
            image_version_resolve.delay_on_commit(version.pk)
        except RegistryError as error:  # the embedded default runs the task at once: its failure is the registry's
            return Response({"detail": str(error)}, status=424)
        return Response(status=202)

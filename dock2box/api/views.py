import django_filters
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from dock2box.api.serializers import HistorySerializer
from dock2box.models import History
from dock2box.selectors import history_list

# The collections of /api/v2, by route name; the apps register them (see dock2box/urls.py).
ENDPOINTS = [
    "site-list", "subnet-list", "host-list", "interface-list", "bmc-list", "image-list", "imageversion-list",
    "pxemenu-list", "pxemenuitem-list", "bootdefaults-detail", "build-list", "discoveredhost-list",
    "boottemplate-list", "mirror-status", "history-list", "power",
]  # fmt: skip


class ApiRootView(APIView):
    """The collections of the Dock2Box API."""

    permission_classes = [IsAuthenticated]
    schema = None

    def get(self, request: Request) -> Response:
        return Response({name.rsplit("-", 1)[0]: reverse(name, request=request) for name in ENDPOINTS})


class HistoryFilterSet(django_filters.FilterSet):
    kind = django_filters.CharFilter(help_text="The object's model name: host, site, subnet, image, imageversion, ...")
    object_id = django_filters.NumberFilter()
    name = django_filters.CharFilter(help_text="The object's name then.")
    actor = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")

    class Meta:
        model = History
        fields = ["kind", "object_id", "name", "actor", "since"]


class HistoryViewSet(viewsets.ReadOnlyModelViewSet):
    """Who did what through the services, to every object (hosts, sites, subnets, images, menus, ...), newest first."""

    queryset = history_list()
    serializer_class = HistorySerializer
    filterset_class = HistoryFilterSet
    ordering_fields = ["time"]

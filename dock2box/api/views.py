from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

# The collections of /api/v2, by route name; the apps register them (see dock2box/urls.py).
ENDPOINTS = [
    "site-list", "subnet-list", "host-list", "interface-list", "image-list", "imageversion-list", "pxemenu-list",
    "pxemenuitem-list", "bootdefaults-detail", "build-list", "discoveredhost-list", "boottemplate-list",
    "mirror-status",
]  # fmt: skip


class ApiRootView(APIView):
    """The collections of the Dock2Box API."""

    permission_classes = [IsAuthenticated]
    schema = None

    def get(self, request: Request) -> Response:
        return Response({name.rsplit("-", 1)[0]: reverse(name, request=request) for name in ENDPOINTS})

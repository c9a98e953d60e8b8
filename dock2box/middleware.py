"""Request plumbing every endpoint shares."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestSizeLimit:
    """A body over DOCK2BOX_UPLOAD_MAX_BYTES is refused with 413 before a byte of it is read or stored."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        limit = settings.DOCK2BOX_UPLOAD_MAX_BYTES
        if length > limit:
            return JsonResponse(
                {"detail": f"The body has {length} bytes; the limit is {limit} (DOCK2BOX_UPLOAD_MAX_BYTES)."},
                status=413,
            )
        return self.get_response(request)

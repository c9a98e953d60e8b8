"""Request plumbing every endpoint shares."""

import logging
from collections.abc import Callable
from urllib.parse import unquote

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

logger = logging.getLogger("dock2box.requests")


def answers_scripts(request: HttpRequest) -> bool:
    """Whether the request is for an endpoint a firmware runs the answer of (its view is marked `answers_scripts`:
    provisioning's boot endpoints): it gets a script, whatever is wrong with the request."""
    try:
        return bool(getattr(resolve(request.path_info).func, "answers_scripts", False))
    except Resolver404:
        return False


class RequestSizeLimit:
    """A body over its limit is refused with 413 before a byte of it is read or stored: a file upload (multipart) over
    DOCK2BOX_UPLOAD_MAX_BYTES, any other body over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (which Django itself answers
    with a 400 HTML page, and only once a view reads the body)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        limit, name = settings.DOCK2BOX_UPLOAD_MAX_BYTES, "DOCK2BOX_UPLOAD_MAX_BYTES"
        memory = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # what Django reads into memory of a body that is not a form
        if not request.META.get("CONTENT_TYPE", "").startswith("multipart/form-data") and memory and memory < limit:
            limit, name = memory, "for a body that is not a file upload"
        if length > limit:
            return JsonResponse({"detail": f"The body has {length} bytes; the limit is {limit} ({name})."}, status=413)
        return self.get_response(request)


class NulRefused:
    """A NUL character in the path or the query (`%00`) is refused with 400 before any view reads it: no value of
    ours holds one, and PostgreSQL cannot look one up (a 500 where it reached a query). Endpoints that answer scripts
    are let through: they answer a script that says what is wrong."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if ("\x00" in request.path_info or "\x00" in unquote(query)) and not answers_scripts(request):
            return JsonResponse({"detail": "The address holds a NUL character (%00); remove it."}, status=400)
        return self.get_response(request)


class DatabaseUnavailable:
    """A request the database failed under (restarting, unreachable, its pooler refusing) is answered 503 with
    Retry-After in the project's error shape, not a 500 HTML page: installers and API clients try again. The admin's
    pages keep Django's own error page. (Endpoints that answer scripts never get here: they answer a script.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError) or request.path_info.startswith("/admin/"):
            return None
        logger.error("database unavailable: %s %s: %s", request.method, request.path_info[:300], exception)
        response = JsonResponse({"detail": "The database did not answer; try again shortly."}, status=503)
        response["Retry-After"] = "5"
        return response

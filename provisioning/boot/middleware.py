"""A booting host is answered with a script whatever `Host` its firmware sends.

`ALLOWED_HOSTS` keeps a forged `Host` header out of the URLs Django builds from it. The boot scripts build none from
it when `DOCK2BOX_PUBLIC_URL` is set (every address in them is that URL's), so a boot request with a `Host` Django
does not accept is answered as if it had named the public URL's host; without `DOCK2BOX_PUBLIC_URL` the portal's
address would come from that header, so the host gets a script that says so and boots its disk. Django's own answer
would be a 400 HTML page, which iPXE cannot run.
"""

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.request import validate_host

from dock2box.middleware import answers_scripts
from provisioning.boot.menu import path_loader
from provisioning.boot.render import RENDERERS

logger = logging.getLogger("dock2box.boot")


class BootHostGuard:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost:
            if answers_scripts(request):
                public = urlsplit(settings.DOCK2BOX_PUBLIC_URL)
                if public.hostname and validate_host(public.hostname, settings.ALLOWED_HOSTS):
                    request.META["HTTP_HOST"] = public.netloc
                    request.META.pop("HTTP_X_FORWARDED_HOST", None)
                else:
                    logger.warning("boot request with a Host not allowed and no DOCK2BOX_PUBLIC_URL: booting the disk")
                    message = "the portal does not know its own address (set DOCK2BOX_PUBLIC_URL)"
                    script = RENDERERS[path_loader(request.path)].notice(message=message)
                    response = HttpResponse(script, content_type="text/plain; charset=utf-8")
                    response["Cache-Control"] = "no-store"
                    return response
        return self.get_response(request)

"""Stored files of image versions, served with `Range` support (or handed to nginx)."""

import re
from collections.abc import Callable, Iterator
from typing import IO

from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import http_date
from django.views.decorators.http import require_GET

from provisioning.storage.selectors import stored_file_for

_RANGE_RE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})\Z")  # no file is 10^18 bytes: longer numbers are not a range


@require_GET
def stored_file(request: HttpRequest, area: str, image: str, version: str, kind: str) -> HttpResponseBase:
    """`/files/boot/<image>/<version>/{kernel,initrd}` and `/files/images/<image>/<version>/file`: stored files of
    image versions, with `Range` (a single range) and `If-Range` (an ETag, or a date equal to Last-Modified)."""
    stored = stored_file_for(area=area, image=image, version=version, kind=kind)
    if stored is None:
        return HttpResponse("No such file.\n", status=404, content_type="text/plain")
    if (
        django_settings.DOCK2BOX_FILES_ACCEL_REDIRECT
    ):  # nginx sends the file (and answers Range) from an internal location
        response = HttpResponse(content_type="application/octet-stream")
        response["X-Accel-Redirect"] = django_settings.DOCK2BOX_FILES_ACCEL_REDIRECT.rstrip("/") + "/" + stored.name
        return response
    modified = stored.storage.get_modified_time(str(stored.name)).timestamp()
    return ranged_file(request, size=stored.size, modified=modified, opener=lambda: stored.open("rb"))


def ranged_file(
    request: HttpRequest, *, size: int, modified: float, opener: Callable[[], IO[bytes]]
) -> HttpResponseBase:
    """A file of `size` bytes last changed at `modified` (a timestamp), with `Range` (a single range) and `If-Range`
    (an ETag, or a date equal to Last-Modified); a HEAD gets the headers alone (firmware asks it before an HTTP
    boot)."""
    start, end = 0, size - 1
    etag, last_modified = f'"{size:x}-{int(modified * 1e6):x}"', http_date(modified)
    header = request.headers.get("Range", "")
    if header and request.headers.get("If-Range", etag) not in (etag, last_modified):
        header = ""  # a range of another version of the file than the client holds: the whole file (RFC 9110)
    match = _RANGE_RE.match(header.replace(" ", "")) if header else None
    if header and (match is None or match.groups() == ("", "")):
        match = None  # not a single byte range: answer with the whole file, as RFC 9110 allows
    elif match:
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:
            start, end = max(size - int(last), 0), size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
    if request.method == "HEAD":
        answer: HttpResponseBase = HttpResponse(content_type="application/octet-stream")
    else:
        handle = opener()
        handle.seek(start)
        answer = StreamingHttpResponse(_read_span(handle, end - start + 1), content_type="application/octet-stream")
    answer["Content-Length"] = str(end - start + 1)
    answer["Accept-Ranges"] = "bytes"
    answer["ETag"], answer["Last-Modified"] = etag, last_modified
    if match:
        answer.status_code = 206
        answer["Content-Range"] = f"bytes {start}-{end}/{size}"
    return answer


def _read_span(handle: IO[bytes], length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    try:
        while length > 0:
            data = handle.read(min(chunk, length))
            if not data:
                break
            length -= len(data)
            yield data
    finally:
        handle.close()

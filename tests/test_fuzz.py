"""Every anonymous endpoint fuzzed (Hypothesis) on PostgreSQL: arbitrary bytes and Unicode in the path, the query,
the headers and the body, with every method. Never a 5xx; an endpoint a firmware runs the answer of always answers
200 with an iPXE script. (TFTP's own fuzzing is in tests/test_tftp.py.)"""

import json
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.boot_world import BUILD_MAC, IDLE_MAC, UNKNOWN_MAC, make_world

pytestmark = [pytest.mark.slow]

# Where a value goes in each anonymous endpoint; `{}` is a drawn path segment.
ENDPOINTS = [
    "/boot.ipxe", "/ipxe", "/ipxe/install", "/pxe/{}", "/config/{}", "/config/{}/events", "/booted/{}",
    "/files/boot/{}/1/kernel", "/files/images/{}/{}/image.tar.gz", "/healthz", "/readyz", "/metrics",
    "/api/v1/hosts", "/api/v1/hosts/{}", "/api/v1/hwaddr/{}", "/api/v1/images/{}/versions", "/schemas/{}.json",
    "/api/v2/hosts/", "/api/v2/hosts/{}/", "/api/schema/", "/admin/login/",
]  # fmt: skip
SCRIPTS = ("/boot.ipxe", "/ipxe", "/ipxe/install", "/pxe/")
MEANINGFUL = [*"%\x00\n\r\t /\\?#&=;:'\"$`{}[]<>|.é\u2028\u0085", "..", "%00", "%ff", "%2f", "${x}"]
TEXT = st.lists(st.sampled_from(MEANINGFUL) | st.text(max_size=8), max_size=6).map("".join)
BYTES = st.binary(max_size=40) | TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "",
]
LATIN1 = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\x00"), max_size=60)


def encoded(raw: bytes) -> str:
    return quote_from_bytes(raw, safe="")


@st.composite
def requests(draw: Any, tokens: list[str]) -> dict[str, Any]:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    segments = st.sampled_from([*tokens, BUILD_MAC, IDLE_MAC, UNKNOWN_MAC]).map(str.encode) | BYTES
    path = endpoint.format(*(encoded(draw(segments)) for _ in range(endpoint.count("{}"))))
    pairs = draw(st.lists(st.tuples(st.sampled_from([b"mac", b"ip", b"platform", b"uuid", b"serial", b"format",
                                                     b"sig", b"limit", b"offset", b"image"]) | BYTES, BYTES),
                          max_size=5))  # fmt: skip
    query = "&".join(f"{encoded(key)}={encoded(value)}" for key, value in pairs)
    headers = {
        f"HTTP_{name}": draw(LATIN1)
        for name in draw(st.sets(st.sampled_from(["HOST", "X_FORWARDED_FOR", "RANGE", "IF_RANGE", "ACCEPT",
                                                  "AUTHORIZATION", "COOKIE", "IF_NONE_MATCH", "USER_AGENT"])))
    }  # fmt: skip
    body = draw(st.binary(max_size=200) | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()))  # fmt: skip
    return {
        "method": draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])),
        "path": f"{path}?{query}" if query else path,
        "body": body,
        "content_type": draw(st.sampled_from(CONTENT_TYPES)),
        "headers": headers,
    }


@pytest.fixture
def world(transactional_db, settings, client):
    settings.DOCK2BOX_PUBLIC_URL = "http://portal.example.com:8000"
    world = make_world()
    text = client.get("/ipxe", {"mac": BUILD_MAC}).content.decode()
    world.tokens = [text.split("/config/")[1].split()[0]]
    return world


@settings(max_examples=1500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_anonymous_endpoints_never_answer_a_5xx(data, world, client):
    request = data.draw(requests(world.tokens))
    client.raise_request_exception = False
    response = client.generic(request["method"], request["path"], request["body"],
                              content_type=request["content_type"], **request["headers"])  # fmt: skip
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if request["path"].startswith(SCRIPTS) and request["method"] == "GET":
        assert response.status_code == 200 and response.content.startswith(b"#!ipxe\n")
        assert b"internal error" not in response.content  # (a failure its view caught is a failure all the same)

"""etcd behind a small interface: read the keys under some directories, make documents equal to what they should be.

`V3Store` speaks the v3 JSON gateway through etcd3gw (reads and writes batched in transactions of at most 128
operations); `V2Store` speaks the v2 keys API that the original tools use (no transactions: a changed document is a
recursive delete and then one set per key). With `both`, each keyspace is read and written on its own.
"""

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import etcd3gw
import requests

TXN_OPS = 128


class EtcdUnavailable(Exception):
    """etcd did not answer (or answered with an error); the change stays in the outbox."""


@dataclass(frozen=True)
class DocumentChange:
    """A document directory (`/host/web01.example.com/`) with what etcd holds and what it should hold."""

    directory: str
    current: dict[str, str]
    desired: dict[str, str]

    @property
    def puts(self) -> dict[str, str]:
        return {key: value for key, value in self.desired.items() if self.current.get(key) != value}

    @property
    def deletes(self) -> list[str]:
        return sorted(set(self.current) - set(self.desired))


class Store(Protocol):
    name: str

    def read(self, directories: list[str]) -> dict[str, str]: ...

    def write(self, changes: list[DocumentChange]) -> int: ...


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _after(prefix: str) -> str:
    """The end of a prefix range: the prefix with its last byte incremented."""
    raw = prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class V3Store:
    name = "v3"

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.client = etcd3gw.Etcd3Client(
            host=parts.hostname or "127.0.0.1", port=parts.port or 2379, protocol=parts.scheme or "http",
            timeout=timeout, api_path="/v3/",
        )  # fmt: skip

    def _txn(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            return dict(self.client.transaction({"compare": [], "success": operations, "failure": []}))
        except (etcd3gw.exceptions.Etcd3Exception, requests.RequestException) as error:
            raise EtcdUnavailable(f"etcd v3: {error}") from error

    def read(self, directories: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for batch in _chunks(directories, TXN_OPS):
            ranges = [{"request_range": {"key": _b64(d), "range_end": _b64(_after(d))}} for d in batch]
            for response in self._txn(ranges).get("responses", []):
                for kv in response.get("response_range", {}).get("kvs", []):
                    found[base64.b64decode(kv["key"]).decode()] = base64.b64decode(kv.get("value", "")).decode()
        return found

    def write(self, changes: list[DocumentChange]) -> int:
        operations = [
            {"request_put": {"key": _b64(key), "value": _b64(value)}}
            for change in changes
            for key, value in change.puts.items()
        ] + [{"request_delete_range": {"key": _b64(key)}} for change in changes for key in change.deletes]
        for batch in _chunks(operations, TXN_OPS):
            self._txn(batch)
        return len(operations)


class V2Store:
    name = "v2"

    def __init__(self, url: str, timeout: float) -> None:
        self.base = url.rstrip("/") + "/v2/keys"
        self.session = requests.Session()
        self.timeout = timeout

    def _call(self, method: str, key: str, **params: str) -> requests.Response:
        try:
            response = self.session.request(
                method, self.base + quote(key), timeout=self.timeout, params=params if method != "PUT" else None,
                data=params if method == "PUT" else None,
            )  # fmt: skip
        except requests.RequestException as error:
            raise EtcdUnavailable(f"etcd v2: {error}") from error
        if response.status_code >= 500 or response.status_code in (400, 403, 405):
            raise EtcdUnavailable(f"etcd v2: {method} {key}: {response.status_code} {response.text[:200]}")
        return response

    def read(self, directories: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for directory in directories:
            response = self._call("GET", directory.rstrip("/") or "/", recursive="true")
            if response.status_code == 404:
                continue
            _flatten_v2(response.json().get("node", {}), found)
        return found

    def write(self, changes: list[DocumentChange]) -> int:
        operations = 0
        for change in changes:
            if change.current == change.desired:
                continue
            if change.current:
                self._call("DELETE", change.directory.rstrip("/"), recursive="true")
                operations += 1
            for key, value in change.desired.items():
                self._call("PUT", key, value=value)
                operations += 1
        return operations


def _flatten_v2(node: dict[str, Any], found: dict[str, str]) -> None:
    if node.get("dir"):
        for child in node.get("nodes", []):
            _flatten_v2(child, found)
    elif "key" in node:
        found[node["key"]] = node.get("value", "")


def stores_for(url: str, api: str, timeout: float) -> list[Store]:
    """The stores DOCK2BOX_ETCD_API asks for: v3, v2, or both (separate keyspaces, each synced on its own)."""
    if api not in ("v3", "v2", "both"):
        raise ValueError(f"DOCK2BOX_ETCD_API is {api!r}; use v3, v2 or both")
    stores: list[Store] = []
    if api in ("v3", "both"):
        stores.append(V3Store(url, timeout))
    if api in ("v2", "both"):
        stores.append(V2Store(url, timeout))
    return stores

"""Generic tests for every /api/v2 endpoint, in the manner of NetBox's APIViewTestCases.

A subclass names its endpoint and model and knows how to make rows and payloads; it gets list, retrieve, create,
update, partial update and delete tests, with 401 for anonymous, 403 without the permission, 400 naming the
field on a bad payload, its filters, and a list that costs the same queries for 1 and for 50 rows.
"""

from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from tests.conftest import grant


@pytest.mark.django_db
class APIViewTestCase:
    basename: str
    model: type[Model]
    # (query string, how many of the rows made by make_filter_rows match it)
    filters: list[tuple[str, int]] = []

    # Subclass hooks -------------------------------------------------------------------------------------------------
    def make_row(self) -> Model:
        raise NotImplementedError

    def create_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def update_payload(self, row: Model) -> dict[str, Any]:
        raise NotImplementedError

    def partial_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    # (field, payload) pairs, each a bad create payload whose 400 must name `field`
    def bad_payloads(self) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def make_filter_rows(self) -> None:
        """Rows that `filters` count against."""

    # Helpers --------------------------------------------------------------------------------------------------------
    @property
    def perm_prefix(self) -> str:
        return f"{self.model._meta.app_label}."

    def perm(self, action: str) -> str:
        return f"{self.perm_prefix}{action}_{self.model._meta.model_name}"

    def list_url(self) -> str:
        return reverse(f"{self.basename}-list")

    def detail_url(self, row: Model) -> str:
        return reverse(f"{self.basename}-detail", args=[row.pk])

    # Tests ----------------------------------------------------------------------------------------------------------
    def test_list_anonymous_is_401(self):
        assert APIClient().get(self.list_url()).status_code == 401

    def test_list_without_permission_is_403(self, token_client):
        assert token_client.get(self.list_url()).status_code == 403

    def test_list(self, user, token_client):
        rows = [self.make_row() for _ in range(3)]
        grant(user, self.perm("view"))
        response = token_client.get(self.list_url())
        assert response.status_code == 200
        assert response.json()["count"] == len(rows)

    def test_retrieve(self, user, token_client):
        row = self.make_row()
        grant(user, self.perm("view"))
        response = token_client.get(self.detail_url(row))
        assert response.status_code == 200
        assert response.json()["id"] == row.pk

    def test_create_without_permission_is_403(self, user, token_client):
        grant(user, self.perm("view"))
        payload = self.create_payload()
        before = self.model.objects.count()
        assert token_client.post(self.list_url(), payload, format="json").status_code == 403
        assert self.model.objects.count() == before

    def test_create(self, user, token_client):
        payload = self.create_payload()
        before = self.model.objects.count()
        grant(user, self.perm("view"), self.perm("add"))
        response = token_client.post(self.list_url(), payload, format="json")
        assert response.status_code == 201, response.json()
        assert self.model.objects.count() == before + 1
        assert self.model.objects.filter(pk=response.json()["id"]).exists()

    def test_create_bad_payload_is_400_naming_the_field(self, user, token_client):
        grant(user, self.perm("view"), self.perm("add"))
        for field, payload in self.bad_payloads():
            before = self.model.objects.count()
            response = token_client.post(self.list_url(), payload, format="json")
            assert response.status_code == 400, (field, response.content)
            assert field in response.json(), (field, response.json())
            assert self.model.objects.count() == before

    def test_update(self, user, token_client):
        row = self.make_row()
        payload = self.update_payload(row)
        grant(user, self.perm("view"))
        assert token_client.put(self.detail_url(row), payload, format="json").status_code == 403
        grant(user, self.perm("change"))
        response = token_client.put(self.detail_url(row), payload, format="json")
        assert response.status_code == 200, response.json()
        self.assert_stored(row, payload)

    def test_partial_update(self, user, token_client):
        row = self.make_row()
        payload = self.partial_payload()
        grant(user, self.perm("view"), self.perm("change"))
        response = token_client.patch(self.detail_url(row), payload, format="json")
        assert response.status_code == 200, response.json()
        self.assert_stored(row, payload)

    def assert_stored(self, row: Model, payload: dict[str, Any]) -> None:
        stored = self.client_view(row)
        for key, value in payload.items():
            if isinstance(value, (str, int, bool)) or value is None:
                assert stored[key] == value, (key, stored[key], value)

    def client_view(self, row: Model) -> dict[str, Any]:
        from django.contrib.auth.models import User

        viewer = User.objects.create_superuser(username=f"viewer{row.pk}", password="x-viewer-password", email="")
        client = APIClient()
        client.force_authenticate(viewer)
        return client.get(self.detail_url(row)).json()

    def test_delete(self, user, token_client):
        row = self.make_row()
        grant(user, self.perm("view"))
        assert token_client.delete(self.detail_url(row)).status_code == 403
        grant(user, self.perm("delete"))
        assert token_client.delete(self.detail_url(row)).status_code == 204
        assert not self.model.objects.filter(pk=row.pk).exists()

    def test_filters(self, user, token_client):
        self.make_filter_rows()
        grant(user, self.perm("view"))
        for query, expected in self.filters:
            response = token_client.get(f"{self.list_url()}?{query}")
            assert response.status_code == 200, (query, response.content)
            assert response.json()["count"] == expected, query

    def test_list_queries_do_not_grow_with_rows(self, user, token_client):
        grant(user, self.perm("view"))
        self.make_row()
        with CaptureQueriesContext(connection) as one:
            assert token_client.get(self.list_url()).status_code == 200
        for _ in range(49):
            self.make_row()
        with CaptureQueriesContext(connection) as fifty:
            response = token_client.get(self.list_url())
        assert response.json()["count"] == 50
        assert len(fifty) == len(one), [query["sql"] for query in fifty.captured_queries]

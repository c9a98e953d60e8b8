"""Filters the apps' filtersets share, and the API's filter backend."""

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError


class IPAddressFilter(django_filters.CharFilter):
    """An IP address filter: anything that is not an address is a 400 naming the parameter, not a database error."""

    field_class = forms.GenericIPAddressField


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, plus: a query parameter that no filter, ordering or pagination reads is a 400 naming
    it. A script that mistypes a filter (`?fqdn=` for `?hostname=`) must not get every row and act on all of them.
    A view that reads parameters of its own names them in `query_params`."""

    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        known = {"ordering", "format", *getattr(view, "query_params", ())}
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            known |= set(filterset_class.base_filters)
        paginator = getattr(view, "paginator", None)
        known |= {
            getattr(paginator, name) for name in ("limit_query_param", "offset_query_param") if hasattr(paginator, name)
        }
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise ValidationError(
                {name: [f"Unknown query parameter; this list takes {', '.join(sorted(known))}."] for name in unknown}
            )
        return super().filter_queryset(request, queryset, view)

"""Filters the apps' filtersets share."""

import django_filters
from django import forms


class IPAddressFilter(django_filters.CharFilter):
    """An IP address filter: anything that is not an address is a 400 naming the parameter, not a database error."""

    field_class = forms.GenericIPAddressField

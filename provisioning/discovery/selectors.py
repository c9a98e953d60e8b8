"""Reads of the MACs that PXE-booted unknown."""

from django.db.models import QuerySet

from provisioning.models import (
    DiscoveredHost,
)


def discovered_host_list() -> QuerySet[DiscoveredHost]:
    """MACs that PXE-booted unknown, most recently seen first."""
    return DiscoveredHost.objects.all()

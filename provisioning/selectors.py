"""Reads across the rooms for the operator's console: the overview and the host list with its state."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Left
from django.utils import timezone

from hosts.choices import HostStatus, PowerState
from hosts.models import Bmc, Host
from hosts.selectors import host_list
from provisioning.builds.selectors import build_list
from provisioning.choices import BuildState
from provisioning.mirror.selectors import MirrorStatus, mirror_status
from provisioning.models import (
    Build,
    BuildEvent,
    DiscoveredHost,
)


def host_list_with_state() -> QuerySet[Host]:
    """The hosts as `hosts.selectors.host_list` reads them, with their BMC, the running build's last progress
    (`running_progress`, None when no build runs or it reported none) and the last failed build's last message
    (`failure_reason`)."""
    latest_progress = BuildEvent.objects.filter(
        build__host=OuterRef("pk"), build__state=BuildState.RUNNING, progress__isnull=False
    ).order_by("-time", "-id")
    failed = BuildEvent.objects.filter(build__host=OuterRef("pk"), build__state=BuildState.FAILED).order_by(
        "-time", "-id"
    )
    return (
        host_list()
        .select_related("bmc")
        .annotate(
            running_progress=Subquery(latest_progress.values("progress")[:1]),
            failure_reason=Subquery(failed.annotate(first_line=Left("message", 120)).values("first_line")[:1]),
        )
    )


@dataclass(frozen=True)
class Overview:
    """What an operator checks first, read in a fixed number of queries however many hosts and builds there are."""

    hosts_by_status: list[tuple[str, str, int]]  # (status, label, count), every status
    power_by_state: list[tuple[str, str, int]]  # (state, label, count) of hosts with a BMC
    running: list[Build]  # the newest SHOWN, with progress and last message (`build_list`)
    running_count: int
    failed: list[Build]  # failed since `failed_since`, newest first; `last_message` is the reason
    failed_count: int
    failed_since: datetime
    stalled: list[Build]  # running, but nothing heard from the installer since `stalled_before`
    stalled_count: int
    stalled_before: datetime
    discovered_count: int
    mirror: MirrorStatus


OVERVIEW_SHOWN = 10


def overview() -> Overview:
    """The admin's front page: hosts by state and power, running, failed and stalled builds, discovered hosts, the
    mirror."""
    now = timezone.now()
    statuses = dict(Host.objects.order_by().values_list("status").annotate(count=Count("id")))
    powers = dict(Bmc.objects.order_by().values_list("power_state").annotate(count=Count("id")))
    failed_since = now - timedelta(days=1)
    stalled_before = now - timedelta(seconds=settings.DOCK2BOX_BUILD_STALLED_AFTER)
    running = build_list().filter(state=BuildState.RUNNING).order_by("-started", "-id")
    failed = build_list().filter(state=BuildState.FAILED, finished__gte=failed_since).order_by("-finished", "-id")
    stalled = running.filter(last_activity__lt=stalled_before)
    return Overview(
        hosts_by_status=[(value, label, statuses.get(value, 0)) for value, label in HostStatus.choices],
        power_by_state=[(value, label, powers[value]) for value, label in PowerState.choices if value in powers],
        running=list(running[:OVERVIEW_SHOWN]),
        running_count=running.count(),
        failed=list(failed[:OVERVIEW_SHOWN]),
        failed_count=failed.count(),
        failed_since=failed_since,
        stalled=list(stalled[:OVERVIEW_SHOWN]),
        stalled_count=stalled.count(),
        stalled_before=stalled_before,
        discovered_count=DiscoveredHost.objects.count(),
        mirror=mirror_status(),
    )

"""Prometheus metrics, all named `dock2box_*`, served at /metrics.

Counters of events (boot requests, TFTP transfers, power actions, BMC requests) live in each process; with several
processes (gunicorn workers, the TFTP server, workers) `DOCK2BOX_METRICS_DIR` makes them add up through
prometheus-client's multiprocess mode. State (builds, the outbox, the mirror) is read from the database at scrape
time, so every process reports the same.
"""

from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from dock2box.models import OutboxEntry
from provisioning.models import Build, MirrorState

BOOT_REQUESTS = Counter("dock2box_boot_requests", "Per-host boot script requests, by outcome", ["outcome"])
TFTP_TRANSFERS = Counter("dock2box_tftp_transfers", "TFTP requests, by outcome (served, refused)", ["outcome"])
POWER_ACTIONS = Counter(
    "dock2box_power_actions", "Power actions through the BMCs, by action and outcome", ["action", "outcome"]
)
BMC_REQUEST_SECONDS = Histogram(
    "dock2box_bmc_request_seconds",
    "BMC requests (log-in included), by operation and outcome",
    ["operation", "outcome"],
    buckets=[0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf")],
)
BUILD_DURATION_BUCKETS = [60, 120, 180, 300, 600, 900, 1800, 3600, float("inf")]


class DatabaseCollector(Collector):
    """Builds by state, build durations, the outbox backlog and the mirror's lag, from the database."""

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        builds = GaugeMetricFamily("dock2box_builds", "Builds, by state", labels=["state"])
        for row in Build.objects.values("state").annotate(count=Count("id")):
            builds.add_metric([row["state"]], row["count"])
        yield builds

        seconds = [
            duration.total_seconds()
            for duration in Build.objects.filter(
                started__isnull=False, finished__isnull=False, state__in=["done", "failed"]
            )
            .annotate(took=ExpressionWrapper(F("finished") - F("started"), output_field=DurationField()))
            .values_list("took", flat=True)
        ]
        buckets = [(str(bound), sum(1 for value in seconds if value <= bound)) for bound in BUILD_DURATION_BUCKETS]
        yield HistogramMetricFamily(
            "dock2box_build_duration_seconds", "Time from the installer's first contact to done or failed",
            buckets=buckets, sum_value=sum(seconds),
        )  # fmt: skip

        waiting = OutboxEntry.objects.aggregate(backlog=Count("id"), oldest=Min("created"))
        yield GaugeMetricFamily(
            "dock2box_outbox_backlog", "Changes waiting for the etcd mirror", value=waiting["backlog"]
        )
        lag = (timezone.now() - waiting["oldest"]).total_seconds() if waiting["oldest"] else 0.0
        yield GaugeMetricFamily("dock2box_sync_lag_seconds", "Age of the oldest change waiting for etcd", value=lag)
        state = MirrorState.objects.filter(pk=1).first()
        last = state.last_success.timestamp() if state and state.last_success else 0.0
        yield GaugeMetricFamily("dock2box_mirror_last_success_timestamp_seconds", "Last successful sync", value=last)


def metrics(request: HttpRequest) -> HttpResponse:
    """`/metrics` in the Prometheus text format."""
    if settings.DOCK2BOX_METRICS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    registry_with_db = CollectorRegistry()
    registry_with_db.register(DatabaseCollector())
    text = generate_latest(registry) + generate_latest(registry_with_db)
    return HttpResponse(text, content_type=CONTENT_TYPE_LATEST)

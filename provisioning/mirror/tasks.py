"""Celery tasks of the etcd mirror (over `provisioning.mirror.sync`)."""

import logging

from celery import shared_task
from django.conf import settings

from provisioning.mirror import sync
from provisioning.mirror.store import EtcdUnavailable

logger = logging.getLogger("dock2box.mirror")


@shared_task(
    bind=True,
    max_retries=10,
    acks_late=True,
    soft_time_limit=240,
    time_limit=300,
    name="provisioning.tasks.outbox_drain",
)
def outbox_drain(self) -> int:  # type: ignore[no-untyped-def]
    """Deliver the outbox to etcd. Woken after every commit that changed a mirrored document."""
    if not settings.DOCK2BOX_ETCD_URL:
        return 0
    try:
        return sync.outbox_drain().operations
    except sync.MirrorBusy:
        # The running drain delivers everything committed before it ends; this one checks again shortly.
        if self.request.is_eager:
            return 0
        raise self.retry(countdown=0.3, max_retries=50) from None
    except EtcdUnavailable:
        if self.request.is_eager:
            return 0  # in-process (no broker): the next change or `manage.py etcd_sync` delivers it
        raise self.retry(countdown=min(2**self.request.retries, 60)) from None


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300, name="provisioning.tasks.outbox_drain_periodic")
def outbox_drain_periodic() -> int:
    """Beat: deliver whatever is left in the outbox (a lost wake-up, an outage that ended)."""
    if not settings.DOCK2BOX_ETCD_URL:
        return 0
    try:
        return sync.outbox_drain(wait=True).operations
    except EtcdUnavailable:
        return 0


@shared_task(acks_late=True, soft_time_limit=1700, time_limit=1800, name="provisioning.tasks.mirror_reconcile")
def mirror_reconcile() -> int:
    """Beat: compare the whole tree with the database and repair what differs (hand edits, lost keys)."""
    if not settings.DOCK2BOX_ETCD_URL:
        return 0
    try:
        return sync.reconcile(sync.mirror_stores()).operations
    except EtcdUnavailable as error:
        sync.mirror_state_error(str(error))
        return 0

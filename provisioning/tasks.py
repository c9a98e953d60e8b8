"""Celery tasks: the etcd mirror (over `provisioning.mirror.sync`), registry look-ups, power control (over the
services) and boot scripts rendered ahead."""

import logging

from celery import shared_task
from django.conf import settings

from dock2box.actors import acting_as
from provisioning.mirror import sync
from provisioning.mirror.store import EtcdUnavailable

logger = logging.getLogger("dock2box.mirror")


@shared_task(bind=True, max_retries=10, acks_late=True, soft_time_limit=240, time_limit=300)
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


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def outbox_drain_periodic() -> int:
    """Beat: deliver whatever is left in the outbox (a lost wake-up, an outage that ended)."""
    if not settings.DOCK2BOX_ETCD_URL:
        return 0
    try:
        return sync.outbox_drain(wait=True).operations
    except EtcdUnavailable:
        return 0


@shared_task(acks_late=True, soft_time_limit=1700, time_limit=1800)
def mirror_reconcile() -> int:
    """Beat: compare the whole tree with the database and repair what differs (hand edits, lost keys)."""
    if not settings.DOCK2BOX_ETCD_URL:
        return 0
    try:
        return sync.reconcile(sync.mirror_stores()).operations
    except EtcdUnavailable as error:
        sync.mirror_state_error(str(error))
        return 0


@shared_task(bind=True, max_retries=3, acks_late=True, soft_time_limit=60, time_limit=90)
def image_version_resolve(self, version_id: int) -> str:  # type: ignore[no-untyped-def]
    """Record what a docker image version's tag points at in its registry (digest, size, layers)."""
    from images.registry import RegistryError
    from provisioning.services import image_version_resolve_from_registry

    try:
        return image_version_resolve_from_registry(version_id=version_id).digest
    except RegistryError as error:
        if self.request.is_eager:
            raise
        raise self.retry(countdown=10 * (self.request.retries + 1)) from error


@shared_task(acks_late=False, soft_time_limit=1700, time_limit=1800)
def power_apply(bmc_id: int, action: str, actor: str) -> str:
    """Carry out a power action through a host's BMC, as `actor` (who asked). Not acknowledged late: a worker that
    dies mid-action must not power-cycle the host again on restart. Returns the outcome (never a secret)."""
    from provisioning.services import power_apply as apply

    with acting_as(actor):
        return apply(bmc_id=bmc_id, action=action)


@shared_task(acks_late=True, soft_time_limit=1700, time_limit=1800)
def power_refresh() -> int:
    """Beat: refresh every host's power state from its BMC."""
    from provisioning.services import power_refresh as refresh

    return refresh()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def boot_scripts_render_ahead() -> int:
    """Beat: keep every known host's next boot script rendered in the shared cache, for the portal's public URL (the
    address a script carries; without DOCK2BOX_PUBLIC_URL a script's portal is known only when a host asks)."""
    from django.utils import timezone

    from provisioning.bootscripts import scripts_render_ahead

    if not settings.DOCK2BOX_PUBLIC_URL:
        return 0
    return scripts_render_ahead(portal=settings.DOCK2BOX_PUBLIC_URL, now=timezone.now())

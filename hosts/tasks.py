"""Celery tasks of the inventory: what an image version's tag resolves to in its registry."""

from celery import shared_task

from hosts.services import image_version_resolve_from_registry
from images.registry import RegistryError


@shared_task(
    bind=True,
    max_retries=3,
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    name="provisioning.tasks.image_version_resolve",
)
def image_version_resolve(self, version_id: int) -> str:  # type: ignore[no-untyped-def]
    """Record what a docker image version's tag points at in its registry (digest, size, layers)."""
    try:
        return image_version_resolve_from_registry(version_id=version_id).digest
    except RegistryError as error:
        if self.request.is_eager:
            raise
        raise self.retry(countdown=10 * (self.request.retries + 1)) from error

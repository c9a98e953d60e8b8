"""The one model every app writes to: the change outbox behind the etcd mirror."""

from django.db import models


class OutboxEntry(models.Model):
    """A mirrored document (an etcd subtree of the original layout) that changed and is not yet in etcd.

    Written in the same transaction as the change (by the services, through `dock2box.changes.record_change`), so a
    change cannot be lost on its way to etcd; drained by provisioning's mirror. `document` is `<kind>/<key>`, e.g.
    `host/web01.example.com`, `hwaddr/52:54:00:12:34:56`, `image/debian-12`, `subnets/10.0.0.0-24`, `default`.
    """

    document = models.CharField(max_length=300)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "outbox entry"
        verbose_name_plural = "outbox"

    def __str__(self) -> str:
        return self.document

"""The models every app writes to: the change outbox behind the etcd mirror, and the history of who did what."""

from django.db import models
from rest_framework.authtoken.models import TokenProxy


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


class History(models.Model):
    """Who did what, through the services, to an object of the inventory: a host (its edits, interfaces, build mode,
    installs, registration), a site, a subnet, an image or version, a menu, a template, the boot defaults.

    `kind` is the object's model name (`host`, `site`, ...) and `object_id` its id: ids are never reused, so the
    lines of a deleted object stay its own. `name` is what the object was called then.
    """

    kind = models.CharField(max_length=40)
    object_id = models.BigIntegerField()
    name = models.CharField(max_length=253, help_text="The object's name then (kept when it is renamed or deleted).")
    time = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=200, help_text="A user, or the part of Dock2Box that acted (installer, ...).")
    action = models.CharField(max_length=60)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        verbose_name_plural = "history"
        indexes = [models.Index(fields=["kind", "object_id", "-time"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.action} by {self.actor}"


class ApiToken(TokenProxy):
    """An API token as the admin shows it: a token is its user's password, so its key is never its name (the admin's
    titles, confirmations and "Recent actions" show `str()`), and never shown after it was made (`dock2box.admin`)."""

    class Meta:
        proxy = True
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"API token of {self.user}"

    @property
    def key_hint(self) -> str:
        """Enough of the key to tell two tokens apart in a list, not enough to use one."""
        return f"{self.key[:4]}…" if self.key else ""

"""`manage.py etcd_sync [--full] [--dry-run]`: deliver the outbox to etcd, or reconcile the whole tree."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dock2box.models import OutboxEntry
from provisioning.mirror import sync
from provisioning.mirror.store import EtcdUnavailable


class Command(BaseCommand):
    help = "Deliver waiting changes to the etcd mirror (--full: compare and repair the whole tree)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--full", action="store_true", help="reconcile every document, stale ones included")
        parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")

    def handle(self, *args: Any, full: bool, dry_run: bool, **options: Any) -> None:
        if not settings.DOCK2BOX_ETCD_URL:
            raise CommandError("The etcd mirror is off: set DOCK2BOX_ETCD_URL.")
        stores = sync.mirror_stores()
        try:
            if full:
                report = sync.reconcile(stores, dry_run=dry_run, progress=self.stdout.write)
            elif dry_run:
                names = set(OutboxEntry.objects.values_list("document", flat=True))
                self.stdout.write(f"{len(names)} documents waiting in the outbox")
                report = sync.sync_documents(stores, names, dry_run=True)
            else:
                self.stdout.write(f"{OutboxEntry.objects.count()} outbox entries waiting")
                report = sync.outbox_drain(stores, wait=True)
        except EtcdUnavailable as error:
            raise CommandError(str(error)) from error
        for line in sync.diff_lines(report.changed):
            self.stdout.write(line)
        verb = "would change" if dry_run else "changed"
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.documents} documents compared, {len(report.changed)} {verb}, {report.operations} writes."
            )
        )

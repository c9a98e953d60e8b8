"""`manage.py restore ARCHIVE`: bring a wiped installation back from a backup archive."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.mirror import sync
from provisioning.mirror.store import EtcdUnavailable
from provisioning.storage.backup import BackupError, restore


class Command(BaseCommand):
    help = "Replace the database with an archive's (checked first, all or nothing), then re-sync the etcd mirror."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("archive")

    def handle(self, *args: Any, archive: str, **options: Any) -> None:
        try:
            manifest = restore(Path(archive))
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"Restored the database from {archive} ({manifest['created']})."))
        if settings.DOCK2BOX_ETCD_URL:
            try:
                report = sync.reconcile(sync.mirror_stores())
            except EtcdUnavailable as error:
                raise CommandError(
                    f"Database restored, but etcd is unreachable: {error}. Run etcd_sync --full."
                ) from error
            self.stdout.write(f"etcd mirror re-synced: {len(report.changed)} documents changed.")

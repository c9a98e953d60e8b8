"""`manage.py backup [--dir DIR] [--keep N]`: archive the database and the etcd tree, unless nothing changed."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.storage.backup import BackupError, backup


class Command(BaseCommand):
    help = "Write a checked archive of the database and the etcd tree (skipped when nothing changed); prune old ones."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dir", default=settings.DOCK2BOX_BACKUP_DIR, help="where archives go")
        parser.add_argument("--keep", type=int, default=settings.DOCK2BOX_BACKUP_KEEP, help="how many to keep")

    def handle(self, *args: Any, dir: str, keep: int, **options: Any) -> None:
        try:
            result = backup(directory=Path(dir), keep=keep)
        except BackupError as error:
            raise CommandError(str(error)) from error
        if result.path is None:
            self.stdout.write("No change since the last backup; nothing written.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Wrote {result.path}"))
        for old in result.removed:
            self.stdout.write(f"Removed {old} (keeping {keep})")

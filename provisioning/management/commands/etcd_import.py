"""`manage.py etcd_import`: bring an original Dock2Box tree (etcdtool export file or live etcd) into the database."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from provisioning.mirror.importer import import_tree
from provisioning.mirror.store import EtcdUnavailable, stores_for
from provisioning.mirror.sync import read_tree


class Command(BaseCommand):
    help = "Import an original-layout tree, all or nothing, with a report of what was imported and rejected."

    def add_arguments(self, parser: Any) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--file", help="an `etcdtool export` JSON file")
        source.add_argument("--from-etcd", metavar="URL", help="a live etcd, e.g. http://127.0.0.1:2379")
        parser.add_argument("--api", choices=["v2", "v3"], default="v2", help="the live etcd's API (the original: v2)")
        parser.add_argument("--prefix", default="", help="the tree's key prefix in the live etcd")
        parser.add_argument("--dry-run", action="store_true", help="check everything, store nothing")

    def handle(self, *args: Any, file: str | None, from_etcd: str | None, api: str, prefix: str, dry_run: bool,
               **options: Any) -> None:  # fmt: skip
        if file:
            try:
                with open(file) as handle:
                    tree = json.load(handle)
            except (OSError, ValueError) as error:
                raise CommandError(f"{file}: {error}") from error
            if not isinstance(tree, dict):
                raise CommandError(f"{file}: the top level is not an object")
        else:
            try:
                tree = read_tree(stores_for(str(from_etcd), api, 10.0)[0], prefix.rstrip("/"))
            except EtcdUnavailable as error:
                raise CommandError(str(error)) from error
        report = import_tree(tree, dry_run=dry_run)
        for path in report.imported:
            self.stdout.write(f"  ok {path}")
        for note in report.notes:
            self.stdout.write(f"  note {note}")
        for problem in report.rejected:
            self.stderr.write(f"  rejected {problem}")
        if not report.ok:
            raise CommandError(f"{len(report.rejected)} record(s) rejected; nothing was imported.")
        verb = "would be imported (dry run)" if dry_run else "imported"
        self.stdout.write(self.style.SUCCESS(f"{len(report.imported)} records {verb}."))

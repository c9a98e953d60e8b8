"""`manage.py etcd_export [--file F]`: the mirrored tree as an etcdtool-style JSON file (the original's backup)."""

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand

from provisioning.mirror.sync import export_tree


class Command(BaseCommand):
    help = "Write the etcd tree of the original layout, as the database projects it, as etcdtool export JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--file", default="-", help="output file (default: standard output)")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        text = json.dumps(export_tree(), indent=2, sort_keys=True) + "\n"
        if file == "-":
            sys.stdout.write(text)
        else:
            with open(file, "w") as handle:
                handle.write(text)
            self.stderr.write(f"Wrote {file}")

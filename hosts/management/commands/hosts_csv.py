"""`manage.py hosts_csv export [FILE]` / `manage.py hosts_csv import FILE`: hosts with their interfaces as CSV.

Import is all or nothing: a bad line and nothing is stored, every bad line is printed, the exit status is 1.
"""

import getpass
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dock2box.actors import acting_as
from hosts import services
from hosts.csv_io import hosts_csv
from hosts.selectors import host_list


class Command(BaseCommand):
    help = "Export the hosts with their interfaces as CSV, or import such a file (all or nothing)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("direction", choices=["export", "import"])
        parser.add_argument("file", nargs="?", help="Export: where to write (default: standard output).")

    def handle(self, *args: Any, direction: str, file: str | None, **options: Any) -> None:
        if direction == "export":
            text = hosts_csv(host_list())
            if file:
                Path(file).write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
            return
        if not file:
            raise CommandError("Name the CSV file to import.")
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"{file}: {error}") from None
        try:
            with acting_as(f"manage.py hosts_csv ({getpass.getuser()})"):
                created, updated = services.hosts_import_csv(text=text)
        except ValidationError as error:
            for message in error.messages:
                self.stderr.write(message)
            raise CommandError("Nothing was imported.") from None
        self.stdout.write(f"{created} host(s) created, {updated} updated.")

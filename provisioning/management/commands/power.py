"""`manage.py power <action> <fqdn>...`: a power action through the hosts' BMCs, as the admin and the API do it.

With a broker the worker carries the actions out; the command waits (up to --timeout seconds) and prints each host's
outcome. Exits 1 when an action was refused or failed.
"""

import getpass
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dock2box.actors import acting_as
from hosts.choices import PowerAction
from hosts.selectors import bmc_list, host_list
from provisioning.power.services import power_request


class Command(BaseCommand):
    help = "Power hosts on, off, through a cycle, reinstall them, or ask their power state, through their BMCs."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=PowerAction.values)
        parser.add_argument("hosts", nargs="+", metavar="fqdn")
        parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait for the outcomes.")

    def handle(self, *args: Any, action: str, hosts: list[str], timeout: float, **options: Any) -> None:
        found = {host.fqdn: host for host in host_list().filter(fqdn__in=hosts)}
        failed = False
        queued = []
        with acting_as(f"manage.py power ({getpass.getuser()})"):
            for name in dict.fromkeys(hosts):
                try:
                    if name not in found:
                        raise CommandError("no such host")
                    power_request(host=found[name], action=action)
                    queued.append(found[name].pk)
                except (ValidationError, CommandError) as error:
                    failed = True
                    reason = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
                    self.stderr.write(f"{name}: refused: {reason}")
        deadline = time.monotonic() + timeout
        waiting = set(queued)
        while waiting:
            for bmc in bmc_list().filter(host_id__in=waiting, pending=""):
                waiting.discard(bmc.host_id)
                failed |= bmc.last_result != "done"
                self.stdout.write(f"{bmc.host.fqdn}: {bmc.last_result} (power {bmc.power_state})")
            if waiting and time.monotonic() > deadline:
                raise CommandError(f"{len(waiting)} action(s) still running after {timeout:g} s")
            if waiting:
                time.sleep(0.5)
        if failed:
            raise CommandError("some actions were refused or failed")

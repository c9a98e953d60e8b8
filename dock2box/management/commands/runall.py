"""`manage.py runall`: every Dock2Box process on one machine, without containers or systemd.

Starts the portal (gunicorn), the worker with its scheduler (celery worker -B) and, with --tftp, the TFTP server;
restarts one that exits, and stops them all on Ctrl-C or SIGTERM.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

RESTART_DELAY = 2.0


class Command(BaseCommand):
    help = "Run web, worker (with beat) and optionally tftp as supervised child processes."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="address of the portal")
        parser.add_argument("--tftp", action="store_true", help="also run the TFTP server (port 69 needs root)")

    def handle(self, *args: Any, bind: str, tftp: bool, **options: Any) -> None:
        bin_dir = Path(sys.executable).parent
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        commands = {
            "web": [str(bin_dir / "gunicorn"), "dock2box.wsgi", "--config", "deploy/gunicorn.conf.py", "--bind", bind],
            "worker": [str(bin_dir / "celery"), "-A", "dock2box", "worker", "-B", "--loglevel", "INFO",
                       "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")],
        }  # fmt: skip
        if tftp:
            commands["tftp"] = [*manage, "tftpd"]
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        running = {name: self._start(name, command) for name, command in commands.items()}
        while not stopping:
            time.sleep(0.5)
            for name, process in running.items():
                if process.poll() is not None and not stopping:
                    self.stderr.write(f"{name} exited with {process.returncode}; restarting in {RESTART_DELAY} s")
                    time.sleep(RESTART_DELAY)
                    running[name] = self._start(name, commands[name])
        for process in running.values():
            process.terminate()
        for process in running.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.stdout.write("All Dock2Box processes stopped.")

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        self.stdout.write(f"starting {name}: {' '.join(command)}")
        return subprocess.Popen(command, cwd=settings.BASE_DIR)  # noqa: S603 - our own programs

"""Starting real programs for tests: free ports, waiting until they answer, stopping them cleanly."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float = 20, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout} s")


def manage(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """Start `manage.py <args>` with this test run's settings plus `env`."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        **popen,  # type: ignore[arg-type]
    )


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

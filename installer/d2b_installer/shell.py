"""Running the boot environment's tools, and the log whose tail goes into a `failed` event."""

import collections
import subprocess
import sys
import time

_tail: collections.deque[str] = collections.deque(maxlen=40)
_started = time.monotonic()


def log(message: str) -> None:
    line = f"[{time.monotonic() - _started:7.2f}] {message}"
    _tail.append(line)
    print(f"d2b: {line}", file=sys.stderr, flush=True)


def log_tail() -> str:
    return "\n".join(_tail)


class CommandError(Exception):
    """A tool failed; the message carries its command line and what it printed."""


def run(*command: str, input: str | None = None) -> str:
    """Run a tool, log it, and return its output; a non-zero exit is CommandError with the output."""
    log("$ " + " ".join(command))
    try:
        done = subprocess.run(command, input=input, capture_output=True, text=True, check=False)
    except OSError as error:
        raise CommandError(f"{command[0]}: {error}") from error
    output = (done.stdout + done.stderr).strip()
    for line in output.splitlines()[-10:]:
        log("  " + line)
    if done.returncode != 0:
        raise CommandError(f"{' '.join(command)} exited with {done.returncode}: {output[-500:]}")
    return done.stdout

"""The portal's side of the contract: kernel arguments, `GET /config/<token>` (env format) and events."""

import json
import shlex
import time
import urllib.error
import urllib.request

from d2b_installer.shell import log

STAGES = ("config", "disk", "image", "configure", "bootloader", "done", "failed")


def kernel_arguments(cmdline: str) -> dict[str, str]:
    """`name=value` words of the kernel command line (a bare word maps to "")."""
    arguments = {}
    for word in cmdline.split():
        name, _, value = word.partition("=")
        arguments[name] = value
    return arguments


def parse_env(text: str) -> dict[str, str]:
    """The `D2B_*` assignments of a shell-quoted env config, without the prefix (values may span lines)."""
    config = {}
    for word in shlex.split(text, comments=True):
        name, equals, value = word.partition("=")
        if equals and name.startswith("D2B_"):
            config[name[4:]] = value
    return config


def _url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


class Portal:
    def __init__(self, config_url: str) -> None:
        self.config_url = _url(config_url)
        self.events_url = ""

    def config(self, attempts: int = 5) -> dict[str, str]:
        """Fetch the host's config, retrying while the network settles; a 4xx (a void token) is final."""
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(self.config_url, timeout=30) as response:  # noqa: S310 (checked)
                    config = parse_env(response.read().decode())
                    self.events_url = _url(config["EVENTS_URL"])
                    return config
            except urllib.error.HTTPError as error:
                if error.code < 500 or attempt == attempts:
                    raise RuntimeError(f"the portal refused the config: {error.code} {error.read(300)!r}") from error
            except OSError as error:
                if attempt == attempts:
                    raise RuntimeError(f"no config from {self.config_url}: {error}") from error
            log(f"config fetch failed (attempt {attempt}), retrying")
            time.sleep(attempt)
        raise AssertionError("unreachable")

    def event(self, stage: str, progress: int | None, message: str) -> None:
        """Post an event; a lost event is logged and retried, never the end of an install."""
        assert stage in STAGES, stage
        log(f"event {stage} {progress if progress is not None else ''} {message.splitlines()[0] if message else ''}")
        if not self.events_url:
            return
        body = json.dumps({"stage": stage, "progress": progress, "message": message}).encode()
        request = urllib.request.Request(  # noqa: S310 (checked)
            self.events_url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        for attempt in range(3):
            try:
                with urllib.request.urlopen(request, timeout=15):  # noqa: S310 (checked)
                    return
            except OSError as error:
                log(f"event not delivered ({error}), attempt {attempt + 1}")
                time.sleep(1)

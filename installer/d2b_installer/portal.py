"""The portal's side of the contract: kernel arguments, `GET /config/<token>` (env format) and events."""

import json
import shlex
import time
import urllib.error
import urllib.parse
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

    def config(self, facts: dict[str, str], attempts: int = 5) -> dict[str, str]:
        """Fetch the host's config, saying `facts` of this boot (the portal records them on the build), retrying while
        the network settles; a 4xx (a void token) is final."""
        url = f"{self.config_url}?{urllib.parse.urlencode(facts)}" if facts else self.config_url
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (checked)
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
        """Post a progress event; a lost one is logged and retried a little, never the end of an install."""
        for attempt in range(3):
            problem = self._post(stage, progress, message, log_it=attempt == 0)
            if problem is None or problem.startswith("refused"):
                return
            log(f"event not delivered ({problem}), attempt {attempt + 1}")
            time.sleep(1)

    def deliver(self, stage: str, progress: int | None, message: str, *, within: float, pause: float = 1.0) -> bool:
        """Post an event the portal must hear (the bootloader is being written, done, failed): retried with a doubling
        pause (capped at 30 s) for up to `within` seconds, each try on the console. False if it was never heard."""
        deadline = time.monotonic() + within
        attempt = 0
        while True:
            attempt += 1
            problem = self._post(stage, progress, message, log_it=attempt == 1)
            if problem is None:
                return True
            left = deadline - time.monotonic()
            if problem.startswith("refused") or left <= 0:
                log(f"{stage} NOT delivered after {attempt} tries: {problem}")
                return False
            pause = min(pause, 30.0, left)
            log(f"{stage} not delivered ({problem}); try {attempt + 1} in {pause:.0f} s, giving up in {left:.0f} s")
            time.sleep(pause)
            pause *= 2

    def _post(self, stage: str, progress: int | None, message: str, *, log_it: bool) -> str | None:
        """One try: None when the portal took the event, else what went wrong (`refused ...` for a 4xx: final)."""
        assert stage in STAGES, stage
        if log_it:
            first = message.splitlines()[0] if message else ""
            log(f"event {stage} {progress if progress is not None else ''} {first}")
        if not self.events_url:
            return None
        body = json.dumps({"stage": stage, "progress": progress, "message": message}).encode()
        request = urllib.request.Request(  # noqa: S310 (checked)
            self.events_url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=15):  # noqa: S310 (checked)
                return None
        except urllib.error.HTTPError as error:
            kind = "refused" if error.code < 500 else "portal error"
            return f"{kind} {error.code}: {error.read(200)!r}"
        except OSError as error:
            return str(error)

"""The installed system's first-boot report: a one-shot systemd unit that tells the portal the system came up.

The unit holds a credential the portal accepts once (`/var/lib/dock2box/booted.url`, readable by root only); it posts
the image digest the installer laid, the machine-id systemd made, the kernel, the uptime and whether the firmware
runs with Secure Boot on; once the portal has
heard it (or refused the credential for good) the credential is removed and the unit disabled. It retries for
ten minutes while the network or the portal is away. It speaks HTTP with curl or wget when the image has one, else
with bash's /dev/tcp (plain http only).
"""

import os
import re
from pathlib import Path

from d2b_installer import rootfs
from d2b_installer.shell import log

STATE = "var/lib/dock2box"
SCRIPT = "usr/lib/dock2box/report-booted"
UNIT = "etc/systemd/system/dock2box-booted.service"
WANTS = "etc/systemd/system/multi-user.target.wants/dock2box-booted.service"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}\Z")
_URL_RE = re.compile(r"https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?\Z")

UNIT_TEXT = f"""# Written by the Dock2Box installer: reports this system's first boot to the portal once.
[Unit]
Description=Dock2Box first-boot report
Wants=network-online.target
After=network-online.target multi-user.target
ConditionPathExists=/{STATE}/booted.url

[Service]
# Not oneshot: the boot does not wait for the portal (the script retries for ten minutes when it is away).
Type=simple
ExecStart=/{SCRIPT}

[Install]
WantedBy=multi-user.target
"""


def _script(shell: str) -> str:
    return f"""#!{shell}
# Written by the Dock2Box installer: tells the portal, once, that this system booted.
state=/{STATE}
url=$(cat "$state/booted.url") || exit 0
kernel=$(uname -r | tr -cd 'A-Za-z0-9._+~-')
machine_id=$(tr -cd '0-9a-f' < /etc/machine-id)
uptime=$(cut -d ' ' -f 1 /proc/uptime)
secure_boot=false  # the firmware's SecureBoot variable: 4 attribute bytes, then 1 when it is on
variable=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
[ -r "$variable" ] && [ "$(od -An -t u1 -j 4 -N 1 "$variable" | tr -d ' ')" = 1 ] && secure_boot=true
body=$(printf '{{"digest": "%s", "machine_id": "%s", "kernel": "%s", "uptime": %s, "secure_boot": %s}}' \\
  "$(tr -cd 'a-z0-9:' < "$state/image-digest")" "$machine_id" "$kernel" "${{uptime:-0}}" "$secure_boot")

post() {{  # prints the HTTP status, or nothing when the portal was not reached
  if command -v curl >/dev/null; then
    curl -s -o /dev/null -w '%{{http_code}}' -m 30 -X POST -H 'Content-Type: application/json' --data "$body" "$url"
  elif command -v wget >/dev/null; then
    wget -q -O /dev/null -T 30 --header='Content-Type: application/json' --post-data="$body" "$url" && echo 201
  elif [ -n "$BASH_VERSION" ] && [ "${{url#http://}}" != "$url" ]; then
    rest=${{url#http://}}; address=${{rest%%/*}}; path=/${{rest#*/}}
    host=${{address%:*}}; port=${{address##*:}}; [ "$port" = "$address" ] && port=80
    exec 3<>"/dev/tcp/$host/$port" || return
    printf 'POST %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Type: application/json\\r\\nContent-Length: %s\\r\\n\\r\\n%s' \\
      "$path" "$address" "${{#body}}" "$body" >&3
    read -r _ status _ <&3 && echo "$status"
    exec 3>&-
  else
    echo "dock2box: no curl, no wget, no bash for $url: cannot report" >&2
  fi
}}

tries=0
while [ "$tries" -lt 60 ]; do
  tries=$((tries + 1))
  status=$(post)
  case "$status" in
    2??) echo "dock2box: first boot reported"; break ;;
    4??) echo "dock2box: the portal refused the report ($status): the credential is used or void"; break ;;
  esac
  echo "dock2box: report not delivered (${{status:-no answer}}), retrying"
  sleep 10
done
rm -f "$state/booted.url" /{WANTS}
"""


def install(root: Path, url: str, digest: str) -> None:
    """Drop the report unit into a systemd image; an image without systemd cannot report (the portal shows it as not
    reporting once its time is up), and says so in the log."""
    if not _URL_RE.match(url):
        raise RuntimeError(f"the first-boot report URL {url!r} is not a plain http(s) URL")
    if digest and not _DIGEST_RE.match(digest):
        raise RuntimeError(f"the image digest {digest!r} is not a sha256 digest")
    if rootfs.has(root, "/lib/systemd/systemd", "/usr/lib/systemd/systemd") is None:
        log("no systemd in the image: its first boot cannot be reported")
        return
    shell = rootfs.has(root, "/bin/bash", "/usr/bin/bash") or "/bin/sh"
    state = root / STATE
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    credential = state / "booted.url"
    credential.write_text(url + "\n")
    credential.chmod(0o600)
    (state / "image-digest").write_text(digest + "\n")
    script = root / SCRIPT
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(_script(shell))
    script.chmod(0o755)
    (root / UNIT).parent.mkdir(parents=True, exist_ok=True)
    (root / UNIT).write_text(UNIT_TEXT)
    wants = root / WANTS
    wants.parent.mkdir(parents=True, exist_ok=True)
    if wants.exists() or wants.is_symlink():
        wants.unlink()
    os.symlink(f"/{UNIT}", wants)
    log(f"first-boot report unit installed ({'with ' + Path(shell).name})")

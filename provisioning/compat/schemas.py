"""JSON Schemas (draft-04) of the original REST contract's documents, served at /schemas/<name>.json.

Written from the original's field lists and patterns; every value is a string, booleans are "true"/"false" (and
"True"/"False", as the original accepted); no other properties are allowed.
"""

from typing import Any

DRAFT = "http://json-schema.org/draft-04/schema#"
BOOL = {"type": "string", "enum": ["true", "false", "True", "False"]}
IPV4 = {"type": "string", "format": "ipv4"}
MAC = {"type": "string", "pattern": "^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$"}
NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}
SITE = {"type": "string", "pattern": "^[a-z][a-z0-9]+$"}
IFNAME = "^[a-z][a-z0-9._-]{0,14}$"
TEXT = {"type": "string"}


def _object(properties: dict[str, Any], title: str, **extra: Any) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "title": title,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


INTERFACE = _object({"gw": IPV4, "hwaddr": MAC, "ip": IPV4, "netmask": IPV4}, "Interface")
IMAGE_VERSION = _object({"main_script": TEXT, "timestamp": TEXT}, "Image version")
SCHEMAS: dict[str, dict[str, Any]] = {
    "host": _object(
        {
            "build": BOOL,
            "debug": BOOL,
            "gpt": BOOL,
            "kexec": BOOL,
            "legacynet": BOOL,
            "kopts": TEXT,
            "image": NAME,
            "version": NAME,
            "site": SITE,
            "volmgt": {"type": "string", "enum": ["btrfs", "lvm", ""]},
            "interface": {"type": "object", "patternProperties": {IFNAME: INTERFACE}, "additionalProperties": False},
            "dhcp": _object({"hwaddr": MAC, "ipv4": IPV4}, "DHCP", required=["hwaddr"]),
        },
        "Host",
    ),
    "interface": INTERFACE,
    "image": _object(
        {
            "type": {"type": "string", "enum": ["docker", "file", "boot"]},
            "bootstrap_image": TEXT,
            "kopts": TEXT,
            "docker_registry": TEXT,
            "file_registry": TEXT,
            "debug": BOOL,
            "gpt": BOOL,
            "kexec": BOOL,
            "uefi": BOOL,
            "volmgt": {"type": "string", "enum": ["btrfs", "lvm", ""]},
            "main_script": TEXT,
            "post_script": TEXT,
            "naming_scheme": TEXT,
            "version": TEXT,
            "versions": {
                "type": "object",
                "patternProperties": {NAME["pattern"]: IMAGE_VERSION},
                "additionalProperties": False,
            },
        },
        "Image",
    ),
    "image_version": IMAGE_VERSION,
    "hwaddr": _object(
        {
            "hostname": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"},
            "interface": {"type": "string", "pattern": IFNAME},
        },
        "Hardware address",
        required=["hostname", "interface"],
    ),
    "subnet": _object(
        {"site": SITE, "gateway": IPV4, "vlan": {"type": "string", "pattern": "^[0-9]+$"}}, "Subnet", required=["site"]
    ),
    "site": _object(
        dict.fromkeys(("domain", "file_uri", "file_server", "registry", "docker_registry", "dns_servers"), TEXT),
        "Site",
    ),
}

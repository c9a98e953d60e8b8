"""JSON Schemas (draft-04) of the original's documents, all twenty, served at /schemas/<name>.json.

Written from the original's field lists and patterns, with its layout: the shared types in `types.json` (referred to
as `types.json#/definitions/<type>`), one schema per document, `all_<kind>.json` for a collection keyed by name,
`root.json` for the whole etcd tree and `all.json` for the `/api/v1` collections. References are relative, so a
client that fetched one schema from `/schemas/` finds the others beside it (as `etcdtool validate` and the original
GUI's schema-driven forms do), and `REGISTRY` resolves them here. Every value is a string; booleans are
"true"/"false" (and "True"/"False", as the original accepted); no other properties are allowed.

Where Dock2Box's tree holds more than the original's schemas named, the schemas say so, and docs/api-v1.md lists it:
`root.json` also has `subnets`, `sites` and `default` (the original's root predates them in etcd), `default.json` also
has `menu_name`, `submenu_name` and `menu_items` (which the original's menu template read), and `site.json` the
spellings its readers used (`file_uri`, `registry`, `dns_servers`).
"""

from typing import Any

from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DRAFT = "http://json-schema.org/draft-04/schema#"
IFNAME = "^[a-z][a-z0-9._-]{0,14}$"
MAC = "^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$"


def _type(name: str) -> dict[str, str]:
    return {"$ref": f"types.json#/definitions/{name}"}


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": f"{schema}.json#"}


def _object(title: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "title": title,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def _keyed(title: str, item: str, key: str = ".+") -> dict[str, Any]:
    """A collection as the original stores it: an object of documents by their key."""
    return _object(title, {}, patternProperties={key: _ref(item)})


TYPES = {
    "$schema": DRAFT,
    "title": "Types",
    "additionalProperties": False,
    "definitions": {
        "boolean": {"type": "string", "enum": ["true", "false", "True", "False"]},
        "integer": {"type": "string", "pattern": "^[0-9]+$"},
        "hostname": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"},
        "hwaddr": {"type": "string", "pattern": MAC},
        "ipv4": {"type": "string", "format": "ipv4"},
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
        "version": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
        "interface": {"type": "string", "pattern": IFNAME},
        "site": {"type": "string", "pattern": "^[a-z][a-z0-9]+$"},
        "domain": {"type": "string", "pattern": "^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$"},
        "volmgt": {"type": "string", "enum": ["btrfs", "lvm", ""]},
        "text": {"type": "string"},
    },
}
TEXT = _type("text")
BOOL = _type("boolean")

DOCUMENTS: dict[str, dict[str, Any]] = {
    "host": _object(
        "Host",
        {
            "build": BOOL,
            "debug": BOOL,
            "gpt": BOOL,
            "kexec": BOOL,
            "legacynet": BOOL,
            "kopts": TEXT,
            "image": _type("name"),
            "version": _type("version"),
            "site": _type("site"),
            "volmgt": _type("volmgt"),
            "interface": _object("Interfaces", {}, patternProperties={IFNAME: _ref("interface")}),
            "dhcp": _object("DHCP", {"hwaddr": _type("hwaddr"), "ipv4": _type("ipv4")}, required=["hwaddr"]),
        },
    ),
    "interface": _object(
        "Interface", {"gw": _type("ipv4"), "hwaddr": _type("hwaddr"), "ip": _type("ipv4"), "netmask": _type("ipv4")}
    ),
    "image": _object(
        "Image",
        {
            "type": {"type": "string", "enum": ["docker", "file", "boot"]},
            **dict.fromkeys(
                (
                    "bootstrap_image",
                    "kopts",
                    "docker_registry",
                    "file_registry",
                    "main_script",
                    "post_script",
                    "naming_scheme",
                    "version",
                ),
                TEXT,
            ),
            **dict.fromkeys(("debug", "gpt", "kexec", "uefi"), BOOL),
            "volmgt": _type("volmgt"),
            "versions": _object(
                "Versions", {}, patternProperties={"^[A-Za-z0-9][A-Za-z0-9._-]*$": _ref("image_version")}
            ),
        },
    ),
    "image_version": _object("Image version", {"main_script": TEXT, "timestamp": TEXT}),
    "hwaddr": _object(
        "Hardware address",
        {"hostname": _type("hostname"), "interface": _type("interface")},
        required=["hostname", "interface"],
    ),
    "subnet": _object(
        "Subnet", {"site": _type("site"), "gateway": _type("ipv4"), "vlan": _type("integer")}, required=["site"]
    ),
    "site": _object(
        "Site", dict.fromkeys(("domain", "file_uri", "file_server", "registry", "docker_registry", "dns_servers"), TEXT)
    ),
    "global": _object(
        "Global",
        {
            "display": {"type": "string", "enum": ["nvidia"]},
            "nuke": BOOL,
            "docker_mirrorlist": TEXT,
            "domain": _type("domain"),
            **dict.fromkeys(("gpt", "kexec", "uefi", "legacynet"), BOOL),
            "volmgt": _type("volmgt"),
            "image": _type("name"),
            "install_image": _type("name"),
            **dict.fromkeys(("install_script", "main_script", "naming_scheme", "post_script"), TEXT),
            "version": {"type": "string", "pattern": "^([a-z0-9]{7}|latest)$"},
        },
    ),
    "default": _object(
        "Default",
        {
            "menu_timeout": _type("integer"),
            "submenu_timeout": _type("integer"),
            **dict.fromkeys(
                (
                    "menu_default",
                    "submenu_default",
                    "bootstrap_image",
                    "bootstrap_version",
                    "menu_name",
                    "submenu_name",
                ),
                TEXT,
            ),
            "menu_items": _object("Menu items", {}, patternProperties={".+": _ref("menu_item")}),
        },
        required=[
            "menu_timeout",
            "submenu_timeout",
            "menu_default",
            "submenu_default",
            "bootstrap_image",
            "bootstrap_version",
        ],
    ),
    "menu_item": _object("Menu item", {"name": TEXT, "command": TEXT}, required=["name", "command"]),
}
COLLECTIONS: dict[str, dict[str, Any]] = {
    "all_hosts": _keyed("Hosts", "host"),
    "all_images": _keyed("Images", "image"),
    "all_interfaces": _keyed("Interfaces", "interface"),
    "all_image_versions": _keyed("Image versions", "image_version"),
    "all_hwaddr": _keyed("Hardware addresses", "hwaddr", MAC),
    "all_subnets": _keyed("Subnets", "subnet"),
    "all_sites": _keyed("Sites", "site"),
    # The etcd tree by its directories; the /api/v1 collections by their names.
    "root": _object(
        "Root",
        {
            "host": _ref("all_hosts"),
            "image": _ref("all_images"),
            "hwaddr": _ref("all_hwaddr"),
            "global": _ref("global"),
            "subnets": _ref("all_subnets"),
            "sites": _ref("all_sites"),
            "default": _ref("default"),
        },
    ),
    "all": _object(
        "All",
        {name: _ref(f"all_{name}") for name in ("hosts", "hwaddr", "images", "sites", "subnets")},
    ),
}
SCHEMAS: dict[str, dict[str, Any]] = {"types": TYPES, **DOCUMENTS, **COLLECTIONS}
REGISTRY: Registry = Registry().with_resources(
    (f"{name}.json", Resource.from_contents(schema, default_specification=DRAFT4)) for name, schema in SCHEMAS.items()
)

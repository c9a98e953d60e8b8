"""Hosts with their interfaces as CSV: one row per interface (a host without one has a row with the interface
columns empty), the host's columns repeated on each of its rows. `hosts_csv` writes what is stored;
`hosts_csv_parse` reads a file back into the services' data, naming the line of every problem."""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hosts.models import Host, boot_order

COLUMNS = [
    "fqdn", "site", "image", "version", "kopts", "labels", "serial", "asset_tag",
    "interface", "mac", "ip", "dhcp", "primary",
]  # fmt: skip
_HOST_COLUMNS = COLUMNS[: COLUMNS.index("interface")]
_YES = {"yes", "true", "1", "y"}
_NO = {"", "no", "false", "0", "n"}
# A cell a spreadsheet would take for a formula (OWASP's list): written behind a single quote, which no stored value
# starts with (the validators refuse quotes), so the import takes the quote off again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def hosts_csv(hosts: Iterable[Host]) -> str:
    """The hosts (with their interfaces prefetched, as `hosts.selectors.host_list` reads them) as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for host in hosts:
        columns = [
            host.fqdn,
            host.site.name if host.site else "",
            host.image.name if host.image else "",
            host.image_version.version if host.image_version else "",
            host.kopts, host.labels, host.serial, host.asset_tag,
        ]  # fmt: skip
        interfaces = sorted(host.interfaces.all(), key=boot_order)
        for interface in interfaces:
            writer.writerow(_inert(
                [*columns, interface.name, interface.mac, interface.ip or "", _flag(interface.dhcp),
                 _flag(interface.primary)]
            ))  # fmt: skip
        if not interfaces:
            writer.writerow(_inert([*columns, "", "", "", "", ""]))
    return out.getvalue()


def _flag(value: bool) -> str:
    return "yes" if value else "no"


def _inert(cells: list[str]) -> list[str]:
    """A row whose cells never start a formula."""
    return [f"'{cell}" if cell.startswith(_FORMULA_START) else cell for cell in cells]


def _cell(value: str) -> str:
    """A cell as the export wrote it, back to the stored value."""
    value = value.strip()
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value


@dataclass
class HostRows:
    """One host of a CSV file: its columns (from its first line; only those the header names) and its interfaces,
    each with its line number."""

    fqdn: str
    line: int
    columns: dict[str, str]
    interfaces: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


class CsvProblem(ValueError):
    """The file itself cannot be read as hosts (encoding, header): nothing in it is looked at further."""


def hosts_csv_parse(text: str) -> tuple[list[HostRows], dict[int, list[str]]]:
    """The hosts of a CSV file in file order, and the problems of single lines (line number → messages)."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = reader.fieldnames or []
    missing = [name for name in ("fqdn", "interface", "mac") if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    if missing or unknown:
        raise CsvProblem(
            f"The header must name the columns {', '.join(COLUMNS)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + "."
        )
    hosts: dict[str, HostRows] = {}
    problems: dict[int, list[str]] = {}
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as error:  # a field over the csv module's limit (128 KiB), a NUL byte: the file is not ours
        raise CsvProblem(f"Line {reader.line_num + 1} cannot be read as CSV: {error}.") from error
    for line, row in rows:
        values = {name: _cell(row.get(name) or "") for name in COLUMNS}
        if None in row:
            problems.setdefault(line, []).append("More fields than the header has columns.")
            continue
        if not values["fqdn"]:
            problems.setdefault(line, []).append("fqdn: This field is required.")
            continue
        fqdn = values["fqdn"].lower().removesuffix(".")
        columns = {name: values[name] for name in _HOST_COLUMNS if name in header}  # a missing column keeps its value
        host = hosts.setdefault(fqdn, HostRows(fqdn=fqdn, line=line, columns=columns))
        if not values["interface"] and not values["mac"]:
            continue
        flags = {}
        for name in ("dhcp", "primary"):
            if values[name].lower() not in _YES | _NO:
                problems.setdefault(line, []).append(f"{name}: Write yes or no, not '{values[name]}'.")
            flags[name] = values[name].lower() in _YES
        host.interfaces.append(
            (line, {"name": values["interface"], "mac": values["mac"], "ip": values["ip"] or None, **flags})
        )
    return list(hosts.values()), problems

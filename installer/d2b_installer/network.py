"""Networking: the boot NIC of the boot environment, and the installed system's configuration files."""

import ipaddress
import os
import time
from pathlib import Path

from d2b_installer.shell import log, run

SYS_NET = Path("/sys/class/net")
RESOLV = Path("/etc/resolv.conf")  # the boot environment's


def _nics() -> dict[str, str]:
    """MAC address → kernel name of every Ethernet NIC."""
    nics = {}
    for path in sorted(SYS_NET.iterdir()):
        if path.name != "lo" and (path / "address").exists():
            nics[(path / "address").read_text().strip().lower()] = path.name
    return nics


def boot_mac(arguments: dict[str, str]) -> str:
    """The MAC of `BOOTIF=01-aa-bb-...` (iPXE's and PXELINUX's spelling), or ""."""
    value = arguments.get("BOOTIF", "").lower()
    if len(value) == 20 and value.startswith("01-"):
        return value[3:].replace("-", ":")
    return ""


def bring_up(arguments: dict[str, str]) -> str:
    """Configure the boot NIC: `d2b.ip/netmask/gateway` when given, else DHCP. Returns its kernel name."""
    for _ in range(50):  # NIC drivers may still be probing
        nics = _nics()
        if nics:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("no network interface: is the NIC driver in the boot environment?")
    mac = boot_mac(arguments)
    name = nics.get(mac) if mac else next(iter(nics.values()))
    if name is None:
        raise RuntimeError(f"no interface has the boot MAC {mac} (interfaces: {', '.join(nics)})")
    run("ip", "link", "set", name, "up")
    ip = arguments.get("d2b.ip", "")
    if ip:
        network = ipaddress.IPv4Network(f"{ip}/{arguments.get('d2b.netmask') or '255.255.255.0'}", strict=False)
        run("ip", "addr", "add", f"{ip}/{network.prefixlen}", "dev", name)
        if arguments.get("d2b.gateway"):
            run("ip", "route", "add", "default", "via", arguments["d2b.gateway"])
        resolver(arguments.get("d2b.dns", "").split(","), "")
    else:
        run("udhcpc", "-i", name, "-n", "-q", "-t", "10", "-s", "/opt/dock2box/udhcpc.sh")
    log(f"network: {name} ({mac or 'first NIC'}) {'static ' + ip if ip else 'DHCP'}")
    return name


def resolver(servers: list[str], domain: str, *, keep: bool = False) -> None:
    """The boot environment's /etc/resolv.conf (the portal and the registry may be names). Nothing is written without
    servers, nor with `keep` over a resolver that is already there (it reached the portal)."""
    servers = [server for server in servers if server]
    if servers and not (keep and RESOLV.exists() and RESOLV.read_text().strip()):
        search = f"search {domain}\n" if domain else ""
        RESOLV.write_text(search + "".join(f"nameserver {server}\n" for server in servers))


def _interfaces(config: dict[str, str]) -> list[dict[str, str]]:
    keys = ("NAME", "MAC", "IP", "NETMASK", "GATEWAY", "PREFIXLEN", "DHCP", "PRIMARY")
    count = len(config.get("INTERFACES", "").split())
    return [{key: config.get(f"IF{n}_{key}", "") for key in keys} for n in range(count)]


def _prefix(nic: dict[str, str]) -> int:
    if nic["NETMASK"]:
        return ipaddress.IPv4Network(f"0.0.0.0/{nic['NETMASK']}").prefixlen
    return int(nic["PREFIXLEN"] or 24)


def write_config(root: Path, config: dict[str, str]) -> list[str]:
    """Network configuration in the format(s) the image uses; returns extra kernel options it relies on.

    systemd-networkd files match NICs by MAC, so they hold whatever the installed system names them. ifupdown names
    interfaces, so it gets the kernel names seen here and the installed kernel keeps them (`net.ifnames=0`).
    """
    nics = [nic for nic in _interfaces(config) if nic["MAC"]]
    dns = config.get("DNS_SERVERS", "").split()
    extra: list[str] = []
    networkd = any((root / d / "systemd/systemd-networkd").exists() for d in ("lib", "usr/lib"))
    ifupdown = (root / "sbin/ifup").exists() or (root / "usr/sbin/ifup").exists()
    if networkd:
        directory = root / "etc/systemd/network"
        directory.mkdir(parents=True, exist_ok=True)
        for number, nic in enumerate(nics):
            lines = ["[Match]", f"MACAddress={nic['MAC']}", "", "[Network]"]
            if nic["DHCP"] == "true" or not nic["IP"]:
                lines.append("DHCP=ipv4")
            else:
                lines.append(f"Address={nic['IP']}/{_prefix(nic)}")
                if nic["GATEWAY"]:
                    lines.append(f"Gateway={nic['GATEWAY']}")
            lines += [f"DNS={server}" for server in dns]
            (directory / f"10-dock2box-{number}.network").write_text("\n".join(lines) + "\n")
        if not ifupdown:
            wants = root / "etc/systemd/system/multi-user.target.wants"
            wants.mkdir(parents=True, exist_ok=True)
            link = wants / "systemd-networkd.service"
            if not link.exists() and not link.is_symlink():
                os.symlink("/lib/systemd/system/systemd-networkd.service", link)
    if ifupdown or not networkd:
        names = _nics()
        lines = ["# Written by the Dock2Box installer", "auto lo", "iface lo inet loopback", ""]
        for number, nic in enumerate(nics):
            name = names.get(nic["MAC"].lower(), f"eth{number}")
            lines.append(f"auto {name}")
            if nic["DHCP"] == "true" or not nic["IP"]:
                lines += [f"iface {name} inet dhcp", ""]
                continue
            lines += [f"iface {name} inet static", f"    address {nic['IP']}/{_prefix(nic)}"]
            if nic["GATEWAY"]:
                lines.append(f"    gateway {nic['GATEWAY']}")
            if dns:
                lines.append(f"    dns-nameservers {' '.join(dns)}")
            lines.append("")
        (root / "etc/network").mkdir(parents=True, exist_ok=True)
        (root / "etc/network/interfaces").write_text("\n".join(lines))
        extra.append("net.ifnames=0")
    resolv = root / "etc/resolv.conf"
    if dns and not resolv.is_symlink():
        search = f"search {config['DOMAIN']}\n" if config.get("DOMAIN") else ""
        resolv.write_text(search + "".join(f"nameserver {server}\n" for server in dns))
    log(f"network config: {'networkd ' if networkd else ''}{'ifupdown' if ifupdown or not networkd else ''}")
    return extra

"""TFTP: what a flood of small requests costs the server (CPU and memory), each asking a block size of its own.

    .venv/bin/python bench/tftp_requests.py [--requests 120] [--file ipxe.efi]

Runs `manage.py tftpd` of the checkout it is started in (the current directory: run it in an earlier checkout to
compare), one server process, and sends `--requests` read requests of ~40 bytes for `--file`, with block sizes 8,
9, 10, ... (RFC 2348's smallest first), each from its own socket: the first answer is read and the exchange ended
with an error packet, as a scanner would. Prints the server processes' CPU seconds and resident memory before and
after, as a Markdown row.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path.cwd()
IPXE = Path("/usr/lib/ipxe")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ask(port: int, name: str, blksize: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"\x00\x01" + name.encode() + b"\x00octet\x00blksize\x00%d\x00" % blksize, ("127.0.0.1", port))
        reply, peer = sock.recvfrom(70000)
        sock.sendto(b"\x00\x05\x00\x00bye\x00", peer)
        return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--file", default="ipxe.efi")
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="d2b-tftp-requests-"))
    port = free_udp_port()
    env = {**os.environ, "DOCK2BOX_PUBLIC_URL": "http://127.0.0.1:8000", "DOCK2BOX_VAR_DIR": str(workdir),
           "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}", "DJANGO_SECRET_KEY": "bench-only",
           "DOCK2BOX_LOG_LEVEL": "WARNING"}  # fmt: skip
    command = [sys.executable, "manage.py", "tftpd", "--bind", "127.0.0.1", "--port", str(port), "--processes", "1"]
    supervisor = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                ask(port, "stage0.ipxe", 512)
                break
            except OSError:
                time.sleep(0.2)
        server = supervisor.pid  # one process: the command serves in itself
        cpu, memory = cpu_seconds(server), rss_mib(server)
        started = time.monotonic()
        answers = [ask(port, arguments.file, 8 + number % 120)[:2] for number in range(arguments.requests)]
        seconds = time.monotonic() - started
        time.sleep(0.5)
        used, grown = cpu_seconds(server) - cpu, rss_mib(server) - memory
        kinds = {"OACK": answers.count(b"\x00\x06"), "other": len(answers) - answers.count(b"\x00\x06")}
    finally:
        supervisor.terminate()
        supervisor.wait()
    size = (IPXE / arguments.file).stat().st_size
    print("| checkout | requests | file | server CPU s | resident MiB before → after | wall s | answers |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {ROOT.name} | {arguments.requests} | {arguments.file} ({size} B) | {used:.2f} | {memory:.0f} → "
          f"{memory + grown:.0f} | {seconds:.1f} | {kinds['OACK']} OACK, {kinds['other']} other |")  # fmt: skip


if __name__ == "__main__":
    main()

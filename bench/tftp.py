"""TFTP: `manage.py tftpd` side by side with Debian's tftpd-hpa (`in.tftpd`), in one run, on loopback.

    .venv/bin/python bench/tftp.py [--clients 50] [--rounds 5]
    .venv/bin/python bench/tftp.py --loss 0.05 [--clients 50]

Both serve the same files: iPXE's `undionly.kpxe` (Debian's ipxe package) and the first-stage script (tftpd-hpa a
copy of the one `manage.py tftpd` generates at start). For each server, block size (512 and 1468) and file, `--clients`
atftp clients run at once, each fetching the file `--rounds` times in a row; every download is compared with the
original byte for byte. Throughput is the bytes delivered over the wall time of the batch. Then the resident memory
of the `manage.py tftpd` processes (the supervisor and one server per core) after all the transfers. Prints a Markdown report (paste it into docs/benchmarks.md).

With `--loss P`, each server sits behind its own lossy proxy (tests/lossy_udp.py: a share P of the datagrams dropped
in each direction) and `--clients` downloads of `undionly.kpxe` run at once, once with tftpy's client (which ACKs a
block it already has again, as firmware does) and once with atftp processes; both without options (both clients end
a transfer at a repeated OACK). Reports the downloads that completed byte-exact and the wall time of each batch.
"""

import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
IPXE = Path("/usr/lib/ipxe")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_serving(port: int, name: str, workdir: Path) -> None:
    """Until a download of `name` succeeds (a TFTP server has no health endpoint)."""
    for _ in range(100):
        result = subprocess.run(["atftp", "--get", "-r", name, "-l", str(workdir / "probe"), "127.0.0.1", str(port)],
                                capture_output=True)  # fmt: skip
        if result.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no TFTP server on port {port}")


def batch(port: int, name: str, expected: bytes, blksize: int, clients: int, rounds: int, workdir: Path) -> dict:
    """`clients` atftp processes at once, `rounds` downloads each; the bytes/s of the batch and its failures."""
    digest = hashlib.sha256(expected).hexdigest()

    def client(number: int) -> int:
        failures, local = 0, workdir / f"client-{number}"
        for _ in range(rounds):
            local.unlink(missing_ok=True)
            result = subprocess.run(
                ["atftp", "--option", f"blksize {blksize}", "--get", "-r", name, "-l", str(local),
                 "127.0.0.1", str(port)],
                capture_output=True,
            )  # fmt: skip
            exact = result.returncode == 0 and hashlib.sha256(local.read_bytes()).hexdigest() == digest
            failures += not exact
        return failures

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        failures = sum(pool.map(client, range(clients)))
    seconds = time.monotonic() - started
    transfers = clients * rounds
    return {"mb_s": transfers * len(expected) / seconds / 1e6, "per_s": transfers / seconds,
            "transfers": transfers, "failures": failures}  # fmt: skip


def lossy_batch(port: int, expected: bytes, clients: int, loss: float, client: str, workdir: Path) -> dict:
    """`clients` downloads of undionly.kpxe at once through a proxy losing `loss` of the datagrams each way."""
    import tftpy

    from tests.lossy_udp import LossyUdpProxy

    proxy = LossyUdpProxy(port, loss=loss).start()

    def one(number: int) -> bool:
        local = workdir / f"lossy-{client}-{number}"
        local.unlink(missing_ok=True)
        if client == "atftp":
            command = ["atftp", "--get", "-r", "undionly.kpxe", "-l", str(local), "127.0.0.1", str(proxy.port)]
            if subprocess.run(command, capture_output=True).returncode != 0:
                return False
        else:
            try:
                tftpy.TftpClient("127.0.0.1", proxy.port).download("undionly.kpxe", str(local), timeout=3, retries=5)
            except Exception:
                return False
        return local.read_bytes() == expected

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(clients) as pool:
            completed = sum(pool.map(one, range(clients)))
    finally:
        proxy.stop()
    return {"completed": completed, "seconds": time.monotonic() - started, "dropped": proxy.dropped,
            "forwarded": proxy.forwarded}  # fmt: skip


def report_loss(args: argparse.Namespace, rows: list[tuple[str, dict]]) -> None:
    print(f"## TFTP through {args.loss:.0%} loss each way ({datetime.now(UTC):%Y-%m-%d}, {args.clients} at once)\n")
    print(f"Command: `.venv/bin/python bench/tftp.py --loss {args.loss} --clients {args.clients}`\n")
    print("| client | tftpd-hpa: byte-exact / s | manage.py tftpd: byte-exact / s | datagrams dropped (hpa / ours) |")
    print("|---|---|---|---|")
    for client, results in rows:
        hpa, ours = results["tftpd-hpa"], results["manage.py tftpd"]
        print(f"| {client} | {hpa['completed']}/{args.clients} in {hpa['seconds']:.1f} | "
              f"{ours['completed']}/{args.clients} in {ours['seconds']:.1f} | {hpa['dropped']} / {ours['dropped']} |")  # fmt: skip


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE).group(1)) / 1024  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loss", type=float, default=0.0, help="the share of datagrams lost each way (0.05: 5 %%)")
    args = parser.parse_args()
    for program in ["atftp", "in.tftpd"]:
        if not shutil.which(program):
            sys.exit(f"{program} is missing: apt-get install atftp tftpd-hpa")

    workdir = Path(tempfile.mkdtemp(prefix="d2b-tftp-bench-"))
    served = workdir / "hpa"
    served.mkdir()
    workdir.chmod(0o755)
    env = {**os.environ, "DOCK2BOX_PUBLIC_URL": "http://127.0.0.1:8000", "DOCK2BOX_VAR_DIR": str(workdir / "var"),
           "DATABASE_URL": f"sqlite:///{workdir / 'var.sqlite3'}", "DJANGO_SECRET_KEY": "bench-only",
           "DOCK2BOX_LOG_LEVEL": "WARNING"}  # fmt: skip
    ours_port, hpa_port = free_udp_port(), free_udp_port()
    ours = subprocess.Popen(
        [sys.executable, "manage.py", "tftpd", "--bind", "127.0.0.1", "--port", str(ours_port), "--ipxe-dir", str(IPXE)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_serving(ours_port, "stage0.ipxe", workdir)
        files = {
            "undionly.kpxe": (IPXE / "undionly.kpxe").read_bytes(),
            "stage0.ipxe": (workdir / "probe").read_bytes(),
        }
        for name, content in files.items():
            (served / name).write_bytes(content)
            (served / name).chmod(0o644)
        served.chmod(0o755)
        hpa = subprocess.Popen(["in.tftpd", "--foreground", "--address", f"127.0.0.1:{hpa_port}", "--secure",
                                "--user", "nobody", "--blocksize", "1468", str(served)])  # fmt: skip
        try:
            wait_serving(hpa_port, "stage0.ipxe", workdir)
            if args.loss:
                lossy = [
                    (client, {label: lossy_batch(port, files["undionly.kpxe"], args.clients, args.loss, client, workdir)
                              for label, port in [("tftpd-hpa", hpa_port), ("manage.py tftpd", ours_port)]})
                    for client in ("tftpy", "atftp")
                ]  # fmt: skip
                report_loss(args, lossy)
                return
            rows = []
            for name, content in files.items():
                for blksize in (512, 1468):
                    results = {}
                    for label, port in [("tftpd-hpa", hpa_port), ("manage.py tftpd", ours_port)]:
                        results[label] = batch(port, name, content, blksize, args.clients, args.rounds, workdir)
                    rows.append((name, len(content), blksize, results))
        finally:
            hpa.terminate()
            hpa.wait()
        children = Path(f"/proc/{ours.pid}/task/{ours.pid}/children").read_text().split()
        memory = [rss_mib(ours.pid)] + [rss_mib(int(pid)) for pid in children]
        transfers = sum(result["transfers"] for *_, results in rows for result in [results["manage.py tftpd"]])
    finally:
        ours.terminate()
        ours.wait()

    print(f"## TFTP ({datetime.now(UTC):%Y-%m-%d}, {args.clients} clients at once, {args.rounds} downloads each)\n")
    print(f"Command: `.venv/bin/python bench/tftp.py --clients {args.clients} --rounds {args.rounds}`\n")
    print(
        "| file | block size | tftpd-hpa MB/s | manage.py tftpd MB/s | ratio | transfers/s (hpa / ours) | failures "
        "(hpa / ours) |\n|---|---|---|---|---|---|---|"
    )
    for name, size, blksize, results in rows:
        hpa_result, our_result = results["tftpd-hpa"], results["manage.py tftpd"]
        print(f"| {name} ({size} B) | {blksize} | {hpa_result['mb_s']:.2f} | {our_result['mb_s']:.2f} | "
              f"{our_result['mb_s'] / hpa_result['mb_s']:.2f}x | {hpa_result['per_s']:.0f} / {our_result['per_s']:.0f} | "
              f"{hpa_result['failures']} / {our_result['failures']} |")  # fmt: skip
    print(f"\n`manage.py tftpd` resident memory after {transfers} transfers: supervisor {memory[0]:.0f} MiB, "
          f"{len(memory) - 1} server processes {', '.join(f'{size:.0f}' for size in memory[1:])} MiB.")  # fmt: skip


if __name__ == "__main__":
    main()

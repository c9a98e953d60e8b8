"""The TFTP server, as a real process, against real clients (tftpy's and atftp)."""

import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tftpy

from tests.services import free_port, manage, stop, wait_until

IPXE = Path("/usr/lib/ipxe")
PORTAL = "http://192.0.2.10:8000"


@pytest.fixture(scope="module")
def tftp_port(tmp_path_factory):
    port = free_port(socket.SOCK_DGRAM)
    log = (tmp_path_factory.mktemp("tftp") / "tftpd.log").open("w")
    process = manage(
        "tftpd", "--bind", "127.0.0.1", "--port", str(port), env={"DOCK2BOX_PUBLIC_URL": PORTAL}, stdout=log, stderr=log
    )
    wait_until(lambda: fetch(port, "stage0.ipxe", tmp_path_factory.mktemp("probe")) is not None, what="tftpd")
    yield port
    stop(process)
    assert process.returncode is not None


def fetch(port: int, name: str, where: Path, blksize: int = 512) -> bytes:
    target = where / "download"
    options = {"blksize": blksize, "tsize": 0} if blksize != 512 else {}
    tftpy.TftpClient("127.0.0.1", port, options=options).download(name, str(target), timeout=2, retries=2)
    return target.read_bytes()


def still_serving(port: int, where: Path) -> None:
    assert fetch(port, "stage0.ipxe", where).startswith(b"#!ipxe")


@pytest.mark.parametrize("name", ["undionly.kpxe", "ipxe.efi", "snponly.efi"])
@pytest.mark.parametrize("blksize", [512, 1468, 8192])
def test_tftpy_client_gets_the_binaries_byte_exact(tftp_port, tmp_path, name, blksize):
    assert fetch(tftp_port, name, tmp_path, blksize) == (IPXE / name).read_bytes()


@pytest.mark.parametrize("options", [[], ["--option", "blksize 1428", "--option", "tsize 0"]])
def test_atftp_gets_the_binaries_byte_exact(tftp_port, tmp_path, options):
    for name in ["undionly.kpxe", "snponly.efi"]:
        target = tmp_path / name
        subprocess.run(
            ["atftp", *options, "-g", "-r", name, "-l", str(target), "127.0.0.1", str(tftp_port)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert target.read_bytes() == (IPXE / name).read_bytes()


def test_first_stage_chains_to_the_portal(tftp_port, tmp_path):
    text = fetch(tftp_port, "stage0.ipxe", tmp_path).decode()
    assert f"chain --autofree {PORTAL}/boot.ipxe" in text


@pytest.mark.parametrize(
    "name",
    ["../../../../etc/passwd", "/etc/passwd", "..", "undionly.kpxe/../../etc/shadow", "missing.efi", "", "a" * 400],
)
def test_requests_outside_the_served_set_are_refused(tftp_port, tmp_path, name):
    with pytest.raises(tftpy.TftpShared.TftpException):
        fetch(tftp_port, name, tmp_path)
    still_serving(tftp_port, tmp_path)


def test_uploads_are_refused(tftp_port, tmp_path):
    source = tmp_path / "payload"
    source.write_bytes(b"#!ipxe\nshell\n")
    with pytest.raises(tftpy.TftpShared.TftpException):
        tftpy.TftpClient("127.0.0.1", tftp_port).upload("stage0.ipxe", str(source), timeout=2, retries=2)
    assert fetch(tftp_port, "stage0.ipxe", tmp_path).startswith(b"#!ipxe\nisset")


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x00", b"\xff\xff garbage", b"\x00\x01no-terminator", b"\x00\x01\xff\xfe\x00octet\x00", b"\x00\x05"],
)
def test_garbage_packets_do_not_stop_the_server(tftp_port, tmp_path, packet):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, ("127.0.0.1", tftp_port))
    still_serving(tftp_port, tmp_path)


def test_fifty_parallel_fetches_all_correct(tftp_port, tmp_path):
    expected = (IPXE / "undionly.kpxe").read_bytes()

    def one(number: int) -> bool:
        where = tmp_path / str(number)
        where.mkdir()
        return fetch(tftp_port, "undionly.kpxe", where, 1468) == expected

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(one, range(50)))
    still_serving(tftp_port, tmp_path)

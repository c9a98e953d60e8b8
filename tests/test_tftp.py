"""The TFTP server, as a real process, against real clients (tftpy's and atftp)."""

import contextlib
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tftpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lossy_udp import LossyUdpProxy
from tests.services import free_port, manage, stop, wait_until

IPXE = Path("/usr/lib/ipxe")
PORTAL = "http://192.0.2.10:8000"


@pytest.fixture(scope="module")
def tftp_port(tmp_path_factory):
    """`manage.py tftpd` with two server processes on one port (SO_REUSEPORT), as on a two-core machine."""
    port = free_port(socket.SOCK_DGRAM)
    log_path = tmp_path_factory.getbasetemp() / "tftpd.log"
    arguments = ["tftpd", "--bind", "127.0.0.1", "--port", str(port), "--processes", "2"]
    process = manage(
        *arguments, env={"DOCK2BOX_PUBLIC_URL": PORTAL}, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    wait_until(lambda: log_path.read_text().count("tftp: serving") == 2, what="two tftpd processes")
    wait_until(lambda: fetch(port, "stage0.ipxe", tmp_path_factory.mktemp("probe")) is not None, what="tftpd")
    yield port
    stop(process)
    assert process.returncode == 0
    servers = subprocess.run(["pgrep", "-f", f"tftpd --bind 127.0.0.1 --port {port}"], capture_output=True, text=True)
    assert servers.stdout == ""  # the server processes ended with their supervisor


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


MALFORMED = {
    "non-ascii name": b"\x00\x01\xc3\xa9t\xc3\xa9.kpxe\x00octet\x00",
    "option not a number": b"\x00\x01undionly.kpxe\x00octet\x00blksize\x00lots\x00",
    "block size over the RFC limit": b"\x00\x01undionly.kpxe\x00octet\x00blksize\x0070000\x00",
    "tsize not a number": b"\x00\x01undionly.kpxe\x00octet\x00tsize\x00-x\x00",
    "unknown opcode": b"\x00\x09undionly.kpxe\x00octet\x00",
    "truncated request": b"\x00\x01undionly.kpxe",
    "odd option list": b"\x00\x01undionly.kpxe\x00octet\x00blksize\x00",
}


def malformed_exchange(port: int, packet: bytes) -> bytes | None:
    """Send one malformed first packet from a fresh socket; then answer whatever comes (an OACK, a DATA) with garbage
    on the session's port, as a broken client would. Returns the last packet the server sent, or None."""
    last = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(packet, ("127.0.0.1", port))
        for _ in range(3):
            try:
                last, sender = sock.recvfrom(70000)
            except TimeoutError:
                break
            if last[:2] == b"\x00\x05":
                break
            sock.sendto(b"\x00\x04\xff", sender)  # an ACK cut short, to the session's own port
    return last


def test_malformed_requests_end_only_their_own_exchange(tftp_port, tmp_path, tmp_path_factory):
    """Transfers in flight finish byte-exact while malformed packets of every kind arrive; each bad exchange ends
    with a TFTP error packet (or silence), and the server serves afterwards."""
    expected = (IPXE / "undionly.kpxe").read_bytes()

    def transfer(number: int) -> bool:
        where = tmp_path / f"t{number}"
        where.mkdir()
        return fetch(tftp_port, "undionly.kpxe", where) == expected

    with ThreadPoolExecutor(24) as pool:
        transfers = [pool.submit(transfer, number) for number in range(16)]
        answers = {
            name: [pool.submit(malformed_exchange, tftp_port, packet) for _ in range(3)]
            for name, packet in MALFORMED.items()
        }
        assert all(future.result() for future in transfers)
        for name, futures in answers.items():
            for future in futures:
                last = future.result()
                assert last is None or last[:2] == b"\x00\x05", (name, last[:40])
    for name in ["non-ascii name", "option not a number", "block size over the RFC limit"]:
        assert all(future.result() is not None for future in answers[name]), f"{name}: no error packet"
    still_serving(tftp_port, tmp_path)
    assert fetch(tftp_port, "undionly.kpxe", tmp_path, 1468) == expected
    log = (tmp_path_factory.getbasetemp() / "tftpd.log").read_text()
    assert "outcome=malformed" in log and "server loop failed" not in log


def test_fifty_parallel_fetches_all_correct(tftp_port, tmp_path):
    expected = (IPXE / "undionly.kpxe").read_bytes()

    def one(number: int) -> bool:
        where = tmp_path / str(number)
        where.mkdir()
        return fetch(tftp_port, "undionly.kpxe", where, 1468) == expected

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(one, range(50)))
    still_serving(tftp_port, tmp_path)


def test_a_download_cuts_blocks_numbered_from_one_and_ends_with_a_short_one():
    from provisioning.boot.tftp import Download

    for size, blocks in [(0, 1), (1, 1), (511, 1), (512, 2), (1000, 2), (1024, 3)]:
        download = Download(b"x" * size, 512, 0)
        packets = [download.packet(number) for number in range(1, download.blocks + 1)]
        assert len(packets) == blocks, size
        assert [int.from_bytes(packet[2:4]) for packet in packets] == list(range(1, blocks + 1))
        assert b"".join(packet[4:] for packet in packets) == b"x" * size
        assert len(packets[-1]) - 4 < 512  # the last block says the file ended
    long = Download(b"x" * (8 * 65537), 8, 0)
    assert [int.from_bytes(long.packet(number)[2:4]) for number in (65535, 65536, 65537)] == [65535, 0, 1]


def test_a_download_answers_each_expected_ack_once_and_refuses_anything_else():
    from tftpy.TftpShared import TftpException

    from provisioning.boot.tftp import Download, Refused

    download = Download(b"x" * 1000, 512, 0)  # after an OACK
    first, second = b"\x00\x03\x00\x01" + b"x" * 512, b"\x00\x03\x00\x02" + b"x" * 488
    assert download.last() is None
    assert download.again(b"\x00\x04\x00\x00") is None  # the OACK's ACK is awaited, no block was sent
    assert download.answer(b"\x00\x04\x00\x00") == first
    assert download.answer(b"\x00\x04\x00\x00") is None  # a duplicate: no second answer (Sorcerer's Apprentice)
    assert download.last() == first
    assert download.again(b"\x00\x04\x00\x00") == first  # ... but the client waits for block 1: when due, again
    assert download.again(b"\x00\x04\x00\x01") is None
    assert download.answer(b"\x00\x04\x00\x01\x00\x00\x00\x00") == second  # padded, as some firmware sends it
    assert download.answer(b"\x00\x04\x00\x02") is True
    for packet in [b"\x00\x04\x00", b"\x00\x03\x00\x01data", b"\x00\x01file\x00octet\x00"]:
        with pytest.raises(Refused):
            Download(b"x" * 1000, 512, 1).answer(packet)
    with pytest.raises(TftpException):
        Download(b"x" * 1000, 512, 1).answer(b"\x00\x05\x00\x00gone\x00")
    long = Download(b"x" * (8 * 65537), 8, 65535)
    assert long.answer(b"\x00\x04\xff\xff")[2:4] == b"\x00\x00"  # block 65536, numbered 0
    assert long.answer(b"\x00\x04\x00\x00")[2:4] == b"\x00\x01"


@pytest.mark.parametrize(
    ("asked", "answered"),
    [(b"0", None), (b"-1", None), (b"7", None), (b"abc", None), (b"8", b"8"), (b"1468", b"1468"),
     (b"65464", b"65464"), (b"65465", b"65464"), (b"100000", b"65464")],
)  # fmt: skip
def test_block_sizes_are_negotiated_within_rfc_2348(tftp_port, asked, answered):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(b"\x00\x01undionly.kpxe\x00octet\x00blksize\x00" + asked + b"\x00", ("127.0.0.1", tftp_port))
        reply, peer = sock.recvfrom(100)
        if answered is None:
            assert reply[:4] == b"\x00\x05\x00\x08"  # error 8: option negotiation refused (RFC 2347)
        else:
            assert reply == b"\x00\x06blksize\x00" + answered + b"\x00"  # the OACK
            sock.sendto(b"\x00\x05\x00\x00done\x00", peer)


def test_a_quiet_client_gets_the_last_block_again_and_a_duplicate_ack_gets_it_only_a_timeout_after_a_send(tftp_port):
    """The block is resent after the server's own timeout (1 s, then 2 s, ...), and when the client's timer acks the
    block before it, provided the last send is a timeout (1 s) old: never at once (the Sorcerer's Apprentice)."""
    expected = (IPXE / "undionly.kpxe").read_bytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(b"\x00\x01undionly.kpxe\x00octet\x00", ("127.0.0.1", tftp_port))
        first, session = sock.recvfrom(1000)
        assert first == b"\x00\x03\x00\x01" + expected[:512]
        assert sock.recvfrom(1000)[0] == first  # no ACK: after the timeout (1 s), the same block again
        sock.sendto(b"\x00\x04\x00\x01", session)
        second = sock.recvfrom(1000)[0]
        assert second == b"\x00\x03\x00\x02" + expected[512:1024]
        sock.sendto(b"\x00\x04\x00\x01", session)  # a duplicate ACK
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recvfrom(1000)
        sock.settimeout(3)
        assert sock.recvfrom(1000)[0] == second  # the server's timer: 1 s after the send; its next wait is 2 s
        time.sleep(1.0)
        sock.sendto(b"\x00\x04\x00\x01", session)  # the client's timer: block 2 never came
        asked = time.monotonic()
        assert sock.recvfrom(1000)[0] == second
        assert time.monotonic() - asked < 0.8  # answered, not left to the server's timer (1 s later)
        sock.sendto(b"\x00\x05\x00\x00done\x00", session)  # the client gives up: the session ends


def test_a_repeated_request_gets_the_first_answer_again_and_an_unanswered_oack_waits_double(tftp_port):
    """The client's timer asking again for its transfer (its first block lost, as it sees it) is answered at once
    when the last send is a timeout old; an OACK nobody acknowledges is resent after 1 s, then after 2 s more."""
    request = b"\x00\x01undionly.kpxe\x00octet\x00"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(request, ("127.0.0.1", tftp_port))
        first, session = sock.recvfrom(1000)
        assert sock.recvfrom(1000)[0] == first  # the server's timer, 1 s after
        time.sleep(1.0)
        sock.sendto(request, ("127.0.0.1", tftp_port))
        asked = time.monotonic()
        assert sock.recvfrom(1000)[0] == first
        assert time.monotonic() - asked < 0.8  # answered, not left to the server's timer (1 s later)
        sock.sendto(b"\x00\x05\x00\x00done\x00", session)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(b"\x00\x01undionly.kpxe\x00octet\x00blksize\x001468\x00", ("127.0.0.1", tftp_port))
        started, oacks = time.monotonic(), []
        while time.monotonic() - started < 3.8:
            with contextlib.suppress(TimeoutError):
                packet, session = sock.recvfrom(2000)
                assert packet[:2] == b"\x00\x06"
                oacks.append(round(time.monotonic() - started, 1))
        assert len(oacks) == 3, oacks  # at once, after 1 s, after 2 s more
        sock.sendto(b"\x00\x05\x00\x00done\x00", session)


def test_retries_count_per_packet_so_a_lossy_link_finishes_its_download(tftp_port):
    """Two blocks in a row each lost twice (the server resends after its timeout, 1 s, up to 3 times): the download
    goes on, where retries counted over the whole transfer would have ended it at the fourth loss."""
    expected = (IPXE / "undionly.kpxe").read_bytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(b"\x00\x01undionly.kpxe\x00octet\x00", ("127.0.0.1", tftp_port))
        block, session = sock.recvfrom(1000)
        for number in (1, 2):
            assert block[2:4] == number.to_bytes(2, "big")
            for _ in range(2):  # its ACK "lost" twice: the same block again after each timeout
                assert sock.recvfrom(1000)[0] == block
            sock.sendto(b"\x00\x04" + number.to_bytes(2, "big"), session)
            block = sock.recvfrom(1000)[0]
        assert block == b"\x00\x03\x00\x03" + expected[1024:1536]
        sock.sendto(b"\x00\x05\x00\x00done\x00", session)


def test_fifty_transfers_through_five_percent_loss_each_way_all_complete_byte_exact(tftp_port, tmp_path):
    """A lossy network (a UDP proxy dropping 5 % of the datagrams in each direction) under 50 clients at once: every
    download completes byte-exact, the server resending what was lost for as long as a client waits. tftpy's client
    ACKs a block it already has again, as firmware does; no options: it (like atftp) ends a transfer at a repeated
    OACK, which a server must send when the ACK to its OACK is lost."""
    expected = (IPXE / "undionly.kpxe").read_bytes()
    proxy = LossyUdpProxy(tftp_port, loss=0.05).start()

    def one(number: int) -> bool:
        target = tmp_path / f"download-{number}"
        tftpy.TftpClient("127.0.0.1", proxy.port).download("undionly.kpxe", str(target), timeout=3, retries=5)
        return target.read_bytes() == expected

    try:
        with ThreadPoolExecutor(50) as pool:
            completed = list(pool.map(one, range(50)))
    finally:
        proxy.stop()
    assert completed.count(True) == 50
    assert proxy.dropped > 300  # the network did lose datagrams
    still_serving(tftp_port, tmp_path)


# Datagrams a broken or hostile client sends: anything, or a request shaped like TFTP's with drawn fields.
NAMES = [b"undionly.kpxe", b"ipxe.efi", b"stage0.ipxe", b"../etc/passwd", b"octet", b"netascii", b"blksize", b"tsize",
         b"timeout", b"windowsize", b"0", b"-1", b"8", b"65464", b"65465", b"99999999999999999999"]  # fmt: skip
FIELD = st.binary(max_size=12) | st.sampled_from(NAMES)
DATAGRAM = st.binary(max_size=600) | st.builds(
    lambda opcode, fields, tail: opcode.to_bytes(2, "big") + b"\x00".join(fields) + tail,
    st.integers(0, 9), st.lists(FIELD, max_size=8), st.sampled_from([b"", b"\x00", b"\x00\x00"]),
)  # fmt: skip


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(first=DATAGRAM, following=st.lists(DATAGRAM, max_size=6))
def test_arbitrary_datagrams_end_at_most_their_own_exchange(tftp_port, tmp_path, first, following):
    """A drawn first datagram to the server's port, then drawn datagrams to whatever port answered (a session's):
    the server answers at most with TFTP packets, and serves the next client byte-exact."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(first, ("127.0.0.1", tftp_port))
        for datagram in following:
            try:
                answer, sender = sock.recvfrom(70000)
            except TimeoutError:
                break
            assert answer[:2] in (b"\x00\x03", b"\x00\x05", b"\x00\x06")  # DATA, ERROR, OACK
            sock.sendto(datagram, sender)
    assert fetch(tftp_port, "undionly.kpxe", tmp_path, 1468) == (IPXE / "undionly.kpxe").read_bytes()

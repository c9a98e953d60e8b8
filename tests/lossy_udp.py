"""A UDP proxy that drops a share of the datagrams in each direction: a lossy network on loopback for TFTP (`tc netem`
is not available on these machines). Used by the TFTP tests and `bench/tftp.py --loss`.

TFTP answers a request from a new port of the server's (its transfer id), so the proxy does the same: each client
gets a session with a socket facing it (the proxy's transfer id, a new port) and one facing the server. A request to
the proxy's port goes to the server's port; anything the client sends to its session socket goes to the server's
transfer id; whatever the server sends goes to the client from the session socket.
"""

import random
import selectors
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Session:
    client: tuple[str, int]
    facing_client: socket.socket
    facing_server: socket.socket
    server_tid: tuple[str, int] | None = None


@dataclass
class LossyUdpProxy:
    """Forward `127.0.0.1:port` to `server_port`, dropping each datagram with probability `loss` (seeded: a run can be
    repeated). `dropped` and `forwarded` count datagrams in both directions."""

    server_port: int
    loss: float
    seed: int = 30
    dropped: int = 0
    forwarded: int = 0
    port: int = 0
    _sessions: dict[tuple[str, int], _Session] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._listener = self._socket()
        self.port = self._listener.getsockname()[1]
        self._ready = selectors.DefaultSelector()
        self._ready.register(self._listener, selectors.EVENT_READ, None)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="lossy-udp-proxy")

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    def start(self) -> "LossyUdpProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join()
        for session in self._sessions.values():
            session.facing_client.close()
            session.facing_server.close()
        self._listener.close()
        self._ready.close()

    def _send(self, sock: socket.socket, datagram: bytes, to: tuple[str, int]) -> None:
        if self._random.random() < self.loss:
            self.dropped += 1
            return
        self.forwarded += 1
        try:
            sock.sendto(datagram, to)
        except OSError:  # a peer gone (ICMP port unreachable on an earlier datagram): as a lost one
            self.dropped += 1

    def _serve(self) -> None:
        while not self._halt.is_set():
            for key, _ in self._ready.select(0.1):
                try:
                    datagram, sender = key.fileobj.recvfrom(65536)  # type: ignore[union-attr]
                except OSError:
                    continue
                session: _Session | None = key.data
                if session is None:  # a request to the proxy's port: the client's session, to the server's port
                    session = self._sessions.get(sender) or self._open(sender)
                    self._send(session.facing_server, datagram, ("127.0.0.1", self.server_port))
                elif key.fileobj is session.facing_client:
                    if session.server_tid is not None:
                        self._send(session.facing_server, datagram, session.server_tid)
                else:  # from the server: its transfer id is where the client's next datagrams go
                    session.server_tid = sender
                    self._send(session.facing_client, datagram, session.client)

    def _open(self, client: tuple[str, int]) -> _Session:
        session = self._sessions[client] = _Session(client, self._socket(), self._socket())
        self._ready.register(session.facing_client, selectors.EVENT_READ, session)
        self._ready.register(session.facing_server, selectors.EVENT_READ, session)
        return session

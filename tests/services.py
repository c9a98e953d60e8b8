"""Starting real programs for tests: free ports, waiting until they answer, stopping them cleanly."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float = 20, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout} s")


def manage(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """Start `manage.py <args>` with this test run's settings plus `env`."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        **popen,  # type: ignore[arg-type]
    )


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Etcd:
    """A private etcd (v3, with the v2 API on) on free loopback ports; stop() and start() keep its data."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.client_port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Etcd":
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = (self.workdir / "etcd.log").open("a")
        self.process = subprocess.Popen(
            ["etcd", "--name", "t", "--data-dir", str(self.workdir / "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"t={peer}", "--enable-v2=true"],
            stdout=log, stderr=log,
        )  # fmt: skip
        wait_until(self.healthy, what="etcd")
        return self

    def healthy(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
            return b"true" in response.read()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def wipe(self) -> None:
        """Delete every key, in both keyspaces."""
        import requests

        requests.post(f"{self.url}/v3/kv/deleterange", json={"key": "AA==", "range_end": "AA=="}, timeout=5)
        listing = requests.get(f"{self.url}/v2/keys/", timeout=5).json()
        for node in listing.get("node", {}).get("nodes", []):
            requests.delete(f"{self.url}/v2/keys{node['key']}", params={"recursive": "true"}, timeout=5)


class Postgres:
    """A private PostgreSQL cluster on a free port (run as the postgres user), for tests that stop their database."""

    BIN = Path("/usr/lib/postgresql") / sorted(p.name for p in Path("/usr/lib/postgresql").iterdir())[-1] / "bin"

    def __init__(self) -> None:
        # Its own directory under /tmp: the postgres user cannot enter pytest's (root-only) temporary tree.
        self.workdir, self.port = Path(tempfile.mkdtemp(prefix="d2b-pg-")), free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        subprocess.run(["chown", "postgres", str(self.workdir)], check=True)
        self._as_postgres(str(self.BIN / "initdb"), "-D", str(self.workdir / "data"), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def start(self) -> "Postgres":
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
        self._as_postgres(str(self.BIN / "pg_ctl"), "-D", str(self.workdir / "data"), "-o", options,
                          "-l", str(self.workdir / "log"), "-w", "start")  # fmt: skip
        return self

    def stop(self) -> None:
        self._as_postgres(str(self.BIN / "pg_ctl"), "-D", str(self.workdir / "data"), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """A fast restart: every session ends (clients' connections fail), the data stays."""
        self.stop()  # (not `pg_ctl restart`: it forgets the log file, and the server would write to our pipe)
        self.start()

    def copy_of(self, source_url: str, name: str) -> str:
        """A database `name` here holding what the database at `source_url` holds (a test's world); its URL."""
        subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name], check=True)
        dump = subprocess.run(["pg_dump", "--no-owner", source_url], check=True, capture_output=True).stdout
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{self.url.rsplit('/', 1)[0]}/{name}"], input=dump,
                       check=True, capture_output=True)  # fmt: skip
        return f"{self.url.rsplit('/', 1)[0]}/{name}"

    def errors(self) -> list[str]:
        """The ERROR lines the server has logged so far."""
        return [line for line in (self.workdir / "log").read_text().splitlines() if "ERROR:" in line]


class Pgbouncer:
    """Debian's pgbouncer in transaction pooling mode (the usual production setup) in front of `postgres_port`, on a
    free loopback port: every transaction of a client may run on another server session."""

    def __init__(self, postgres_port: int, pool_size: int = 4) -> None:
        self.workdir, self.port = Path(tempfile.mkdtemp(prefix="d2b-pgbouncer-")), free_port()
        (self.workdir / "users.txt").write_text('"postgres" ""\n')
        (self.workdir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={postgres_port}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.workdir / 'users.txt'}\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 500\nserver_login_retry = 1\n"
            f"logfile = {self.workdir / 'pgbouncer.log'}\n"
        )
        subprocess.run(["chown", "-R", "postgres", str(self.workdir)], check=True)
        self.process: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> "Pgbouncer":
        program = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"  # (Debian's; root's PATH may lack /usr/sbin)
        self.process = subprocess.Popen([program, "-q", "-u", "postgres", str(self.workdir / "pgbouncer.ini")])
        wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() is None,
                   what="pgbouncer")  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


class Redis:
    """A private Redis on a free loopback port, for tests that stop, pause or flush it (the machine's own Redis serves
    everything else). It keeps nothing on disk: a restart starts it empty, as a restarted cache usually is."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Redis":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                          check=True).stdout.strip() == b"PONG", what="redis")  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def pause(self) -> None:
        """Stop answering without losing anything (a network partition, a Redis stuck): SIGSTOP."""
        assert self.process is not None
        self.process.send_signal(19)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(18)

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], capture_output=True, check=True)


class IpmiSim:
    """OpenIPMI's `ipmi_sim` as a host's BMC on a free loopback UDP port: IPMI over LAN (user `admin`), powering the
    machine `startcmd` on and off (a QEMU guest through its `ipmi-bmc-extern` device, or any stand-in process).
    `{serial_port}` in `startcmd` is the TCP port the guest's BMC device connects to."""

    USER, PASSWORD = "admin", "bmc-secret-1"

    def __init__(self, workdir: Path, startcmd: str) -> None:
        self.workdir = workdir
        self.port, self.serial_port = free_port(socket.SOCK_DGRAM), free_port()
        self.startcmd = startcmd
        self.process: subprocess.Popen | None = None

    def start(self) -> "IpmiSim":
        (self.workdir / "state").mkdir(parents=True, exist_ok=True)
        (self.workdir / "sim.emu").write_text(
            "mc_setbmc 0x20\n"
            "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
            "sel_enable 0x20 1000 0x0a\n"
            "mc_enable 0x20\n"
        )
        auths = "none md2 md5 straight"
        (self.workdir / "lan.conf").write_text(
            'name "bmc1"\nset_working_mc 0x20\n  startlan 1\n'
            f"    addr 127.0.0.1 {self.port}\n    priv_limit admin\n"
            + "".join(f"    allowed_auths_{level} {auths}\n" for level in ("callback", "user", "operator", "admin"))
            + "    guid a123456789abcdefa123456789abcdef\n  endlan\n"
            f"  serial kcs 127.0.0.1 {self.serial_port} codec VM\n"
            f'  startcmd "{self.startcmd.format(serial_port=self.serial_port)}"\n'
            "  startnow false\n  poweroff_wait 5\n  kill_wait 5\n"
            f'user 2 true "{self.USER}" "{self.PASSWORD}" admin 10 {auths}\n'
        )
        log = (self.workdir / "ipmi_sim.log").open("a")
        self.process = subprocess.Popen(
            ["ipmi_sim", "-c", "lan.conf", "-f", "sim.emu", "-s", str(self.workdir / "state"), "-n"],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        wait_until(lambda: self.power() in ("on", "off"), what="ipmi_sim")
        return self

    def power(self) -> str:
        """The machine's power as `ipmitool` (not the portal's client) reads it from the simulator."""
        answer = subprocess.run(
            ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(self.port), "-U", self.USER,
             "-P", self.PASSWORD, "power", "status"],
            capture_output=True, text=True, timeout=15,
        )  # fmt: skip
        return answer.stdout.strip().rsplit(" ", 1)[-1]

    def stop(self) -> None:
        if self.process is not None:
            if self.power() == "on":
                subprocess.run(
                    ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(self.port), "-U", self.USER,
                     "-P", self.PASSWORD, "power", "off"],
                    capture_output=True, timeout=30,
                )  # fmt: skip
            stop(self.process)
            self.process = None


class Gunicorn:
    """The portal as deployed (gunicorn with deploy/gunicorn.conf.py) on a free loopback port; `env` names its
    database and cache (a test passes this run's test database)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gunicorn-{self.port}.log"
        self.env = {**os.environ, "DOCK2BOX_BIND": f"127.0.0.1:{self.port}", **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> "Gunicorn":
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "dock2box.wsgi", "--config", "deploy/gunicorn.conf.py"],
            cwd=ROOT, env=self.env, stdout=log, stderr=log,
        )  # fmt: skip
        wait_until(lambda: urllib.request.urlopen(f"{self.url}/healthz", timeout=1).status == 200, what="gunicorn")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


class Nginx:
    """nginx as deploy/nginx/dock2box.conf deploys it, on a free loopback port, balancing `upstreams`."""

    def __init__(self, workdir: Path, upstreams: list[str], media: Path | None = None) -> None:
        """`media`: the portal's MEDIA_ROOT, which nginx sends stored files from (DOCK2BOX_FILES_ACCEL_REDIRECT)."""
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        site = (ROOT / "deploy" / "nginx" / "dock2box.conf").read_text()
        if media is not None:
            site = site.replace("alias /var/lib/dock2box/media/;", f"alias {media}/;")
        servers = "".join(f"    server {upstream} max_fails=3 fail_timeout=5s;\n" for upstream in upstreams)
        site = re.sub(r"(    server \S+ max_fails=3 fail_timeout=5s;\n)+", servers, site)
        site = site.replace("    listen 80;", f"    listen 127.0.0.1:{self.port};")
        access = "log_format upstreams '$upstream_addr $status $request_uri';\n"
        access += f"access_log {workdir}/access.log upstreams;\n"
        (workdir / "nginx.conf").write_text(
            f"user root; worker_processes 2; pid {workdir}/nginx.pid; error_log {workdir}/error.log;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ client_body_temp_path {workdir}; proxy_temp_path {workdir}; fastcgi_temp_path {workdir};\n"
            f"  uwsgi_temp_path {workdir}; scgi_temp_path {workdir};\n{access}{site}}}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        self.process = subprocess.Popen(["nginx", "-c", str(self.workdir / "nginx.conf"), "-g", "daemon off;"])
        wait_until(lambda: urllib.request.urlopen(f"{self.url}/healthz", timeout=1).status == 200, what="nginx")
        return self

    def upstreams_used(self) -> list[str]:
        """The instance that answered each request so far, in order."""
        return [line.split()[0] for line in (self.workdir / "access.log").read_text().splitlines()]

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

"""A throwaway PostgreSQL server for the integration tests: initdb into a temporary folder,
start on a free loopback port, stop and delete afterwards (even when a test fails).

PostgreSQL refuses to run as root; as root, the server runs as the `postgres` system user
(through setpriv), in a folder that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _bindir() -> Path:
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).parent))
    for c in candidates:
        if (Path(c) / "initdb").is_file() and (Path(c) / "postgres").is_file():
            return Path(c)
    raise Unavailable(
        "PostgreSQL server binaries not found (looked in $PG_BINDIR, "
        "/usr/lib/postgresql/*/bin, PATH); install the Debian package 'postgresql'"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    url: str
    port: int
    folder: Path
    process: subprocess.Popen

    @property
    def psycopg2_url(self) -> str:
        """The URL with its driver named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3,
        and the venv has psycopg2 (dataproxy-optuna adds the driver by itself)."""
        return self.url.replace("postgresql://", "postgresql+psycopg2://", 1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(database: str = "optuna") -> PostgresServer:
    bindir = _bindir()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="dataproxy-pg-"))
    try:
        if as_root:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable(
                    "running as root and there is no 'postgres' user to run the server as"
                ) from None
            if not shutil.which("setpriv"):
                raise Unavailable("running as root and 'setpriv' (util-linux) is missing")
            os.chown(folder, user.pw_uid, user.pw_gid)
            prefix = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
            ]
        data = folder / "data"
        init = subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            raise Unavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        port = _free_port()
        # The server dies with this process (SIGINT = fast shutdown), should pytest be killed.
        death = ["--pdeathsig", "INT"] if prefix else []
        log = open(folder / "server.log", "w")
        process = subprocess.Popen(
            [
                *prefix,
                *death,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(folder),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=50",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        server = PostgresServer(
            url=f"postgresql://postgres@127.0.0.1:{port}/{database}",
            port=port,
            folder=folder,
            process=process,
        )
        try:
            _wait_ready(server, bindir)
            _create_database(port, database)
        except BaseException:
            server.stop()
            raise
        return server
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _wait_ready(server: PostgresServer, bindir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = (server.folder / "server.log").read_text(errors="replace")
            raise Unavailable(f"postgres exited at start-up: {log.strip()[-800:]}")
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port), "-q"]
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise Unavailable(f"postgres did not accept connections within {timeout:.0f} s")


def _create_database(port: int, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()

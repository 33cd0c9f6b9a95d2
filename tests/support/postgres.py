"""Debian's PostgreSQL, started for a test on a free port in a temporary folder and torn down
after (``initdb`` + ``pg_ctl``; as the ``postgres`` user when the tests run as root, since the
server refuses to run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"{name} not found: apt-get install postgresql")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://origin@127.0.0.1:{self.port}/origin"

    def database(self, name: str) -> str:
        """A new empty database's URL (a test of its own on the shared server)."""
        cmd = [_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "origin", name]
        subprocess.run(_as_postgres(cmd), check=True, capture_output=True, timeout=60)
        return f"postgresql://origin@127.0.0.1:{self.port}/{name}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([_bin("pg_ctl"), "-D", str(self.data), *args]),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", opts, "-l", str(self.data / "log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")


@contextmanager
def postgres() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="origin-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    try:
        subprocess.run(
            _as_postgres([_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "origin"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        pg = Postgres(data, _free_port())
        pg.start()
        try:
            pg.database("origin")
            yield pg
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped by the test
                pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

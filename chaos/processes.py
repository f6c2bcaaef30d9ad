"""Child processes of a run: started in their own session, bounded in time.

Each child runs under coreutils ``timeout`` with the run's time limit, so it
stops by itself even if the run itself dies. Its process group is its own:
a SIGKILL reaches the child and nothing else, and its output is appended to
a log file of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from app.settings import PROJECT_ROOT, Settings

STOP_GRACE = 10.0


def command(*args: str) -> list[str]:
    """The ``ctgo-webhooks`` command of this environment, with ``args``."""
    script = Path(sys.executable).parent / "ctgo-webhooks"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "app.cli.main", *args]


def service_env(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment without any service setting, plus ``overrides``."""
    settings = {name for name, _default, _doc in Settings.describe()}
    kept = {k: v for k, v in os.environ.items() if k not in settings}
    return {**kept, **overrides}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Child:
    """One long-running child process that can be killed and started again."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log: Path,
        max_seconds: float,
    ) -> None:
        self.name = name
        self.starts = 0
        self._argv = argv
        self._env = env
        self._log = log
        self._max_seconds = max_seconds
        self._process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        bounded = self._argv
        if shutil.which("timeout"):
            limit = str(int(self._max_seconds))
            bounded = ["timeout", "-k", "5", limit, *self._argv]
        with self._log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *bounded,
                env=self._env,
                cwd=PROJECT_ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.starts += 1

    async def kill(self) -> None:
        """SIGKILL the child (its whole group) and reap it."""
        await self._signal(signal.SIGKILL, 5.0)

    async def stop(self) -> None:
        """SIGTERM, a grace period, then SIGKILL."""
        await self._signal(signal.SIGTERM, STOP_GRACE)
        await self._signal(signal.SIGKILL, 5.0)

    async def _signal(self, signum: signal.Signals, wait: float) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), wait)


async def run_once(
    argv: list[str], env: dict[str, str], log: Path, timeout: float
) -> tuple[int, bytes]:
    """Run a command to its end; (exit code, stdout). Its stderr goes to ``log``."""
    with log.open("ab") as errors:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
        )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return -signal.SIGKILL, b""
    return int(process.returncode or 0), out

"""The bench's helper processes: started, read from, and always stopped.

Every child runs from the project root with this interpreter, logs to a file
in the run's folder, and dies with the bench: the kernel sends it SIGTERM if
the bench process goes away, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 20.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read_json(self, timeout: float) -> dict[str, Any]:
        """The next line the child prints on stdout, as JSON."""
        stdout = self.process.stdout
        if stdout is None:
            raise RuntimeError(f"{self.name} was started without a stdout pipe")
        try:
            async with asyncio.timeout(timeout):
                line = await stdout.readline()
        except TimeoutError:
            raise RuntimeError(
                f"{self.name} printed nothing in {timeout:g} s"
            ) from None
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} ended without a result; its log:\n{tail}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def finished(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            return await self.process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime, fields 14 and 15 of proc(5), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process ever had (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


@asynccontextmanager
async def running(
    name: str,
    module: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    logs: Path,
) -> AsyncIterator[Child]:
    """``python -m module args`` for the duration of the block."""
    log = logs / f"{name}.log"
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
            preexec_fn=_die_with_parent,
        )
    child = Child(name, process, log)
    try:
        yield child
    finally:
        await stop(child)


async def stop(child: Child) -> None:
    """SIGTERM, then SIGKILL if it is still there after STOP_TIMEOUT."""
    if child.process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.process.send_signal(signal.SIGTERM)
    try:
        await child.finished(STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.process.kill()
        await child.process.wait()


def _die_with_parent() -> None:
    # Runs in the child before exec: a bench killed with SIGKILL must not
    # leave workers and servers behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

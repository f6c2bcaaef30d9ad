"""The product's worker with every delivery a no-op: the queue's ceiling.

Run as ``python -m bench.noop_worker`` with the worker's environment. It is
``ctgo-webhooks worker`` itself (same pool, HTTP client, Procrastinate
options, task, queue and sweep) except that the ``deliver`` task returns at
once, so what it reaches is what Procrastinate's per-job cost allows here.
The sweep skips one step: requeuing due rows, which would queue a new job
for every row a no-op job left pending, and the run would never end.
"""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from app import logs
from app.delivery import sweeper, worker
from app.settings import Settings


class NoopDeliverer:
    """Takes the Deliverer's place; touches neither the row nor the network."""

    def __init__(self, *args: object) -> None:
        pass

    async def start(self, outbox_id: int) -> list[object]:
        return []

    def stop_claiming(self) -> None:
        pass

    async def drain(self, grace: float) -> None:
        pass


async def requeue_nothing(pool: AsyncConnectionPool) -> int:
    return 0


def main() -> None:
    settings = Settings.from_env()
    logs.configure(settings.log_format, settings.log_level)
    # The worker builds its Deliverer by this module-level name.
    setattr(worker, "Deliverer", NoopDeliverer)  # noqa: B010 - not re-exported
    sweeper.requeue_due_rows = requeue_nothing
    asyncio.run(worker.run(settings))


if __name__ == "__main__":
    main()

"""The delivery worker process: ``ctgo-webhooks worker``.

A Procrastinate worker runs the ``deliver`` task (queue ``deliveries``, one
argument ``outbox_id``). Jobs are queued in SQL by ``ctgo_enqueue_deliveries()``;
NOTIFY wakes the worker for new ones, and retries scheduled for later are
found by polling every POLL_INTERVAL. A job claims its row and, while POST
slots are free, up to DELIVERY_BATCH - 1 more due rows in one statement
(dropping their jobs), starts their POSTs and ends; the POSTs run on,
WORKER_CONCURRENCY at a time, and record their outcomes. Beside it run the
sweeper (:mod:`app.delivery.sweeper`) and, hourly, the removal of delivery
jobs that finished more than a day ago.

On SIGTERM or SIGINT no new job is taken, attempts in flight get
SHUTDOWN_GRACE seconds to end, and the rest are abandoned with their rows due
again for any worker. A worker that stops by itself (the database went
away, say) is started again after a pause.

Each worker process records a heartbeat (:mod:`app.delivery.heartbeat`) and,
given WORKER_METRICS_PORT, serves its own metrics (:mod:`app.delivery.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import structlog
from aiohttp.abc import AbstractResolver
from procrastinate import App, JobContext, PsycopgConnector
from procrastinate.app import WorkerOptions

from app.database import deliveries
from app.database.connection import database_url
from app.delivery import heartbeat, metrics
from app.delivery.attempt import Deliverer, pool_size
from app.delivery.sender import open_client
from app.delivery.sweeper import (
    HEARTBEAT_INTERVAL,
    STALLED_AFTER,
    error_text,
    sweep_forever,
)
from app.settings import Settings

logger = structlog.get_logger(__name__)

QUEUE = "deliveries"
TASK = "deliver"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RESTART_DELAY = 2.0
KEEP_FINISHED_JOBS_HOURS = 24
JOB_CONCURRENCY = 2


async def deliver(context: JobContext, outbox_id: int) -> None:
    """Claim an outbox row if it is due, with more due rows, and start their POSTs.

    The job ends once the attempts are started: they run on, each in its
    POST slot, and record their own outcomes (see Deliverer.start).
    """
    deliverer: Deliverer = context.additional_context["deliverer"]
    await deliverer.start(outbox_id)


async def remove_old_jobs(context: JobContext, timestamp: int) -> None:
    """Delete delivery jobs that ended more than a day ago; attempts stay."""
    await context.app.job_manager.delete_old_jobs(
        nb_hours=KEEP_FINISHED_JOBS_HOURS,
        queue=QUEUE,
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )


def make_app() -> App:
    """A Procrastinate app with the delivery tasks; open it on a pool."""
    app = App(connector=PsycopgConnector())
    app.task(name=TASK, queue=QUEUE, pass_context=True)(deliver)
    cleanup = app.task(name="remove_old_delivery_jobs", queue=QUEUE, pass_context=True)
    app.periodic(cron="7 * * * *", periodic_id="hourly")(cleanup(remove_old_jobs))
    return app


async def run(settings: Settings) -> None:
    """Deliver until SIGTERM or SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(settings, stop)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def serve(
    settings: Settings, stop: asyncio.Event, resolver: AbstractResolver | None = None
) -> None:
    """Deliver until ``stop`` is set; ``resolver`` is for tests."""
    _quiet_libraries(settings)
    app = make_app()
    async with (
        metrics.serving(settings) as metrics_port,
        deliveries.open_pool(database_url(settings), pool_size(settings)) as pool,
        open_client(settings, resolver) as client,
        app.open_async(pool),
        heartbeat.beating(pool) as identity,
    ):
        deliverer = Deliverer(pool, client, settings)
        sweeper = asyncio.create_task(sweep_forever(app, pool, settings, QUEUE))
        logger.info(
            "worker_started",
            worker=str(identity),
            concurrency=settings.worker_concurrency,
            metrics_port=metrics_port,
        )
        try:
            await _work_until(stop, app, deliverer, settings)
        finally:
            await deliverer.drain(settings.shutdown_grace)
            sweeper.cancel()
            await asyncio.wait([sweeper])
    logger.info("worker_stopped")


async def _work_until(
    stop: asyncio.Event, app: App, deliverer: Deliverer, settings: Settings
) -> None:
    options = _worker_options(deliverer, settings)
    while not stop.is_set():
        worker = asyncio.create_task(app.run_worker_async(**options))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            # Cancelling is Procrastinate's graceful stop: no new jobs, then
            # SHUTDOWN_GRACE for running ones before they are cancelled too.
            # Jobs still waiting for a POST slot end at once.
            deliverer.stop_claiming()
            worker.cancel()
            await asyncio.wait({worker})
            return

        error = None if worker.cancelled() else worker.exception()
        logger.error("worker_restarting", error=error_text(error) if error else None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RESTART_DELAY)


def _worker_options(deliverer: Deliverer, settings: Settings) -> WorkerOptions:
    return {
        "queues": [QUEUE],
        "name": "delivery",
        # Jobs only claim rows and start POSTs, which WORKER_CONCURRENCY
        # slots bound: two at a time keep a fetch and a claim overlapping.
        "concurrency": JOB_CONCURRENCY,
        "fetch_job_polling_interval": settings.poll_interval,
        "shutdown_graceful_timeout": settings.shutdown_grace,
        "additional_context": {"deliverer": deliverer},
        "install_signal_handlers": False,
        "update_heartbeat_interval": HEARTBEAT_INTERVAL,
        "stalled_worker_timeout": STALLED_AFTER,
    }


def _quiet_libraries(settings: Settings) -> None:
    # httpx logs every request with its URL, and a target URL's path can
    # hold a customer's secret; our own event per attempt says what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.log_level != "debug":
        # Two lines per job from Procrastinate would drown the attempt events.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)

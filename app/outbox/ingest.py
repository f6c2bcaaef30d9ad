"""Ingest one sync: its leads and the outbox rows they fan out to, at once.

:func:`ingest_sync` opens a sync, COPYs the leads in, and completes it with
``ctgo_complete_sync`` in ONE transaction: either every new lead, outbox row
and delivery job is written, or nothing is. :func:`read_ndjson` reads the
leads of one sync from NDJSON (one lead object a line), naming the line of
anything it refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

import msgspec
import structlog

from app.database import syncs
from app.database.connection import Connection
from app.errors import FieldProblem, InvalidInput
from app.outbox.leads import Lead, decode_lead, repeats, stored_row
from app.settings import Settings

logger = structlog.get_logger(__name__)

# Enough to fix a file in one go without drowning the operator.
MAX_PROBLEMS = 20

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest wrote; ``leads_known`` were skipped as not new."""

    sync_id: int
    leads_received: int
    leads_written: int
    leads_known: int
    outbox_rows: int


async def ingest_sync(
    conn: Connection,
    workspace_id: int,
    leads: Sequence[Lead],
    settings: Settings,
) -> IngestResult:
    """Write one sync's leads and complete it in one transaction.

    A lead id the workspace already has from an earlier sync is skipped and
    counted in ``leads_known``; the same id twice in ``leads`` is refused.
    """
    _refuse_repeats([lead.id for lead in leads], lambda i: f"$[{i}]")
    started = time.perf_counter()

    async with conn.transaction():
        sync_id = await syncs.begin_sync(conn, workspace_id)
        written = await syncs.add_leads(
            conn, workspace_id, sync_id, (stored_row(lead) for lead in leads)
        )
        completion = await syncs.complete_sync(
            conn,
            sync_id,
            max_leads=settings.max_leads_per_body,
            max_bytes=settings.max_body_bytes,
        )

    result = IngestResult(
        sync_id=sync_id,
        leads_received=len(leads),
        leads_written=written,
        leads_known=len(leads) - written,
        outbox_rows=completion.outbox_count,
    )
    logger.info(
        "sync_ingested",
        workspace_id=workspace_id,
        sync_id=sync_id,
        leads_received=result.leads_received,
        leads_written=result.leads_written,
        leads_known=result.leads_known,
        outbox_rows=result.outbox_rows,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )
    return result


def read_ndjson(stream: IO[bytes]) -> list[Lead]:
    """Every lead of an NDJSON stream; blank lines are skipped.

    Raises :class:`InvalidInput` naming the line of each malformed lead and
    of each repeated id (the first :data:`MAX_PROBLEMS` of them).
    """
    leads: list[Lead] = []
    lines: list[int] = []
    problems: list[FieldProblem] = []

    for number, line in enumerate(stream, start=1):
        if number == 1:
            line = line.removeprefix(_BOM)
        if not line.strip():
            continue
        try:
            leads.append(decode_lead(line))
        except msgspec.DecodeError as exc:
            problems.append(FieldProblem(f"line {number}", "invalid_lead", str(exc)))
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        lines.append(number)

    if problems:
        raise InvalidInput(problems)
    _refuse_repeats([lead.id for lead in leads], lambda i: f"line {lines[i]}")
    return leads


def _refuse_repeats(ids: list[str], where: Callable[[int], str]) -> None:
    problems = [
        FieldProblem(
            where(again),
            "duplicate_id",
            f"lead id {ids[again]!r} appears again (first at {where(first)}); "
            "ids are unique within a sync",
        )
        for first, again in repeats(ids)
    ]
    if problems:
        raise InvalidInput(problems[:MAX_PROBLEMS])

"""What a measure needs in its database: a workspace, subscriptions, leads.

Everything goes in through the product's own data layer. Leads come from
``scripts/make-sample-leads`` (the project's seeded generator of synthetic
leads), so a bench sees the same mix of scripts, emoji and bio lengths as
the tests.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import random
from collections.abc import Sequence
from functools import cache
from types import ModuleType

from app.database import subscriptions, syncs, workspaces
from app.database.connection import Connection
from app.filters import FilterConfig
from app.outbox.leads import Lead, decode_lead, stored_row
from bench.children import ROOT

GENERATOR = ROOT / "scripts" / "make-sample-leads"


@cache
def _generator() -> ModuleType:
    # The script has no .py suffix (it is run by hand), so load it by path.
    loader = importlib.machinery.SourceFileLoader("make_sample_leads", str(GENERATOR))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    if spec is None:
        raise RuntimeError(f"cannot load {GENERATOR}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def make_leads(count: int, seed: int, prefix: str = "b") -> list[Lead]:
    """``count`` synthetic leads; ids start with ``prefix`` so runs never collide."""
    rng = random.Random(seed)  # noqa: S311 - repeatable data, not secrets
    leads = []
    for number in range(1, count + 1):
        fields = _generator().make_lead(rng, number)
        fields["id"] = f"{prefix}{seed}_{number}"
        leads.append(decode_lead(json.dumps(fields).encode()))
    return leads


def mixed_filters(count: int, seed: int) -> list[FilterConfig]:
    """Filters as customers set them: some empty, most one or two fields."""
    rng = random.Random(seed)  # noqa: S311 - repeatable data, not secrets
    generator = _generator()
    choices = {
        "stream_id": list(generator.STREAMS),
        "account_id": list(generator.ACCOUNTS),
        "source_type": ["follower", "liker"],
        "feedback_status": ["good", "bad"],
        "match_confidence": ["high", "medium", "low"],
    }
    filters = []
    for _ in range(count):
        fields = {
            name: rng.choice(values)
            for name, values in choices.items()
            if rng.random() < 0.3
        }
        filters.append(FilterConfig(**fields))
    return filters


async def workspace(conn: Connection) -> tuple[int, str]:
    """A new workspace and a live API key: (id, key)."""
    created = await workspaces.create_workspace(conn, "bench")
    key = await workspaces.create_key(conn, int(str(created["id"])))
    return key.workspace_id, key.key


async def subscribe(
    conn: Connection,
    workspace_id: int,
    targets: Sequence[tuple[str, FilterConfig]],
) -> list[int]:
    """Subscribe each (target URL, filter); returns the subscription ids."""
    ids = []
    async with conn.transaction():
        for url, filter_config in targets:
            done = await subscriptions.subscribe(conn, workspace_id, url, filter_config)
            ids.append(int(done.row["id"]))
    return ids


async def open_sync(conn: Connection, workspace_id: int, leads: Sequence[Lead]) -> int:
    """A committed sync holding ``leads``, not completed yet."""
    async with conn.transaction():
        sync_id = await syncs.begin_sync(conn, workspace_id)
        await syncs.add_leads(
            conn, workspace_id, sync_id, (stored_row(lead) for lead in leads)
        )
    return sync_id

"""Catch The Good Ones lead webhooks.

The package is laid out by what each part does:

- ``app.api``: the public HTTP API (Litestar).
- ``app.outbox``: sync completion, which turns new leads into outbox rows.
- ``app.delivery``: the Procrastinate worker that POSTs outbox rows.
- ``app.oncall``: inspection and replay tools for the on-call engineer.
- ``app.database``: the one layer that talks to PostgreSQL; the others use it.
- ``app.cli``: the ``ctgo-webhooks`` command that fronts all of the above.
"""

__version__ = "0.1.0"

"""The delivery worker: POST every outbox row to its subscription's target.

- :mod:`~app.delivery.worker`: the Procrastinate worker process (``ctgo-webhooks
  worker``), its ``deliver`` task and its graceful stop.
- :mod:`~app.delivery.attempt`: one attempt at one row, from claim to record.
- :mod:`~app.delivery.sender`: the HTTP client and the checked resolver.
- :mod:`~app.delivery.signing`: Standard Webhooks headers and signature.
- :mod:`~app.delivery.backoff`: when the next attempt is due.
- :mod:`~app.delivery.sweeper`: recovery of lost jobs and abandoned leases.

The outbox row is the source of truth; a Procrastinate job only wakes a
worker up for it. A job that finds its row not due does nothing.
"""

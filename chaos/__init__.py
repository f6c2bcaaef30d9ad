"""Hostile runs that prove the service keeps its promise: no lost notifications.

- :mod:`chaos.run`: the chaos run behind ``scripts/chaos``. A private
  PostgreSQL, the API, several workers and a misbehaving receiver, all as
  separate processes; syncs go in while workers are killed and PostgreSQL
  restarts, then every delivery is checked against a reference.
- :mod:`chaos.fuzz`: the schemathesis run behind ``scripts/fuzz``.
- :mod:`chaos.postgres`, :mod:`chaos.processes`, :mod:`chaos.receiver`: the
  pieces those runs start, each bounded in time so nothing outlives a run.
- :mod:`chaos.reference` and :mod:`chaos.verdict`: the leads and filters of a
  run, and the check of what arrived against what should have.

Everything listens on and connects to loopback only.
"""

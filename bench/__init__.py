"""``scripts/bench``: how far the service is from what this machine allows.

Every figure is measured in one run, against a private PostgreSQL started for
the run and a receiver on loopback, beside a floor or a ceiling measured the
same way: COPY for the fan-out, no-op Procrastinate jobs and bare HTTP loops
for delivery, a bare Litestar endpoint for the API. Ratios between the two
are what to watch; absolute numbers depend on the machine.

- :mod:`bench.__main__`: the command line, the run plan, the report.
- :mod:`bench.postgres`: the private server, a migrated template, clones.
- :mod:`bench.children`: the helper processes, started and stopped.
- :mod:`bench.fixtures`: workspaces, subscriptions and leads for a run.
- :mod:`bench.fanout`, :mod:`bench.delivery`, :mod:`bench.latency`,
  :mod:`bench.api`: one measure each.
- :mod:`bench.receiver`, :mod:`bench.noop_worker`, :mod:`bench.post_loop`,
  :mod:`bench.bare_api`, :mod:`bench.load`: the helper processes' programs.
- :mod:`bench.report`: the figures, as one table and as JSON.
"""

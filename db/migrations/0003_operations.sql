-- Operating the service: failing subscriptions are disabled on their own,
-- and each worker process leaves a heartbeat that health checks read.

-- Set by the first failed delivery attempt after a success (429s aside) and
-- cleared by the next success: while it is set, every attempt since has
-- failed. Past AUTO_DISABLE_AFTER the worker disables the subscription.
ALTER TABLE subscriptions ADD COLUMN failing_since timestamptz;

-- One row per worker process, named by its host and process id; it beats
-- every few seconds while the worker runs and is marked stopped when the
-- worker ends gracefully. Rows of long-gone workers are pruned at start-up.
CREATE TABLE delivery_workers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);

CREATE INDEX delivery_workers_by_host ON delivery_workers (hostname, started_at DESC);
CREATE INDEX delivery_workers_running ON delivery_workers (last_heartbeat)
    WHERE stopped_at IS NULL;

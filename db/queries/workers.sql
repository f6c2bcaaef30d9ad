-- name: worker_register
-- A worker process starts: record it under its host name and process id.
-- Rows whose worker has been silent for a week are removed on the way.
WITH pruned AS (
    DELETE FROM delivery_workers
     WHERE last_heartbeat < now() - interval '7 days'
)
INSERT INTO delivery_workers (hostname, pid)
VALUES (%(hostname)s, %(pid)s)
RETURNING id;

-- name: worker_beat
-- The worker is alive: one heartbeat.
UPDATE delivery_workers SET last_heartbeat = now() WHERE id = %(id)s;

-- name: worker_stopped
-- The worker ended gracefully.
UPDATE delivery_workers
   SET stopped_at = now(), last_heartbeat = now()
 WHERE id = %(id)s;

-- name: worker_on_host
-- The newest worker started on a host, or the newest with that process id;
-- ages are measured on the database's clock, so hosts' clocks do not matter.
SELECT id, hostname, pid, started_at, last_heartbeat, stopped_at,
       extract(epoch FROM now() - last_heartbeat)::float8 AS heartbeat_age
  FROM delivery_workers
 WHERE hostname = %(hostname)s
   AND (%(pid)s::integer IS NULL OR pid = %(pid)s::integer)
 ORDER BY started_at DESC, id DESC
 LIMIT 1;

-- name: running_workers
-- Workers that have not stopped and beat within the last hour, with the age
-- of their last heartbeat. Older silent rows are workers long gone.
SELECT hostname, pid,
       extract(epoch FROM now() - last_heartbeat)::float8 AS heartbeat_age
  FROM delivery_workers
 WHERE stopped_at IS NULL AND last_heartbeat > now() - interval '1 hour'
 ORDER BY hostname, pid;

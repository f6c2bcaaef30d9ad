-- name: relax_commit_durability
-- For the worker's connections: a commit returns before its WAL reaches the
-- disk. Losing the latest ones in a database crash only repeats attempts:
-- webhooks are delivered at least once, and receivers dedupe by webhook-id.
SET synchronous_commit = off;

-- name: claim_delivery
-- Take the lease on one row for one attempt if it is due, or settle it if
-- its subscription is no longer active: see ctgo_claim_delivery().
SELECT * FROM ctgo_claim_delivery(%(outbox_id)s, %(lease_seconds)s);

-- name: claim_more_deliveries
-- Take leases on up to %(limit)s more due rows for the attempts a job makes
-- beside its own row, and drop the waiting jobs of the rows taken: their
-- work is done here, without a job fetch each. Only pending rows of active
-- subscriptions that are not failing are taken (a failing receiver keeps its
-- one attempt at a time, through its own jobs). SKIP LOCKED everywhere: this
-- never waits for a lock, so it cannot deadlock with a claim or a sweep. A
-- job Procrastinate is starting right now is left alone; it finds its row
-- taken and ends.
WITH taken AS (
    SELECT id FROM ctgo_due_for_batch(%(limit)s) AS id
),
unqueued AS (
    DELETE FROM procrastinate_jobs
     WHERE id IN (
         SELECT j.id
           FROM procrastinate_jobs AS j
          WHERE j.status = 'todo'
            AND j.queueing_lock IN (SELECT 'outbox:' || t.id FROM taken AS t)
            FOR UPDATE SKIP LOCKED
     )
)
UPDATE outbox AS o
   SET state = 'delivering',
       attempt_count = o.attempt_count + 1,
       lease_token = gen_random_uuid(),
       lease_until = now() + make_interval(secs => %(lease_seconds)s),
       updated_at = now()
  FROM taken AS t, subscriptions AS s
 WHERE o.id = t.id AND s.id = o.subscription_id
RETURNING o.id AS outbox_id, o.webhook_id, o.body, o.attempt_count,
          ctgo_window_attempt_no(o) AS window_attempt_no, o.lease_token,
          o.subscription_id, o.workspace_id, o.state,
          false AS taken_over, s.target_url, s.secret;

-- name: enqueue_deliveries
-- Queue (or move up to now) the delivery job of each row: a replay, or a row
-- whose job ended without an attempt because its worker is stopping. A row
-- that is not due finds that out when its job runs.
SELECT ctgo_enqueue_deliveries(%(ids)s::bigint[]) AS queued;

-- name: requeue_early_job
-- A pending row the claim passed over gets a job for later, so it does not
-- wait for a sweep: at its due time when the job came early (a retry moved
-- later, a replay), or after %(wait_seconds)s when it is due but its failing
-- receiver already has an attempt in flight.
SELECT ctgo_enqueue_deliveries(
           ARRAY[o.id],
           CASE
               WHEN o.next_attempt_at > now() THEN o.next_attempt_at
               ELSE now() + make_interval(secs => %(wait_seconds)s)
           END
       ) AS queued
  FROM outbox AS o
 WHERE o.id = %(outbox_id)s AND o.state = 'pending';

-- name: record_delivered
-- The receivers took them: each row is delivered, final. Takes the attempts
-- of any number of rows, as parallel arrays, so that a worker's successes
-- that end together go on record in one statement: it settles the rows and
-- puts the attempts on record, so both happen or neither. Only a lease
-- holder may settle its row; the attempt is recorded either way. A success
-- ends its subscription's failing stretch (a write only when there was one).
-- One row back per attempt, with state NULL where the lease was lost.
WITH done AS (
    SELECT *
      FROM unnest(
               %(outbox_id)s::bigint[], %(lease_token)s::uuid[],
               %(subscription_id)s::bigint[], %(attempt_no)s::integer[],
               %(started_at)s::timestamptz[], %(duration_ms)s::integer[],
               %(status_code)s::integer[], %(response_excerpt)s::text[],
               %(location)s::text[]
           ) AS d (outbox_id, lease_token, subscription_id, attempt_no,
                   started_at, duration_ms, status_code, response_excerpt,
                   location)
),
recovered AS (
    UPDATE subscriptions
       SET failing_since = NULL
     WHERE id IN (SELECT d.subscription_id FROM done AS d)
       AND failing_since IS NOT NULL
),
settled AS (
    UPDATE outbox AS o
       SET state = 'delivered', finished_at = now(), updated_at = now(),
           lease_token = NULL, lease_until = NULL,
           last_status_code = d.status_code, last_error = NULL
      FROM done AS d
     WHERE o.id = d.outbox_id AND o.lease_token = d.lease_token
    RETURNING o.id, o.state
),
recorded AS (
    INSERT INTO delivery_attempts (
        outbox_id, attempt_no, started_at, duration_ms, outcome, status_code,
        response_excerpt, location
    )
    SELECT d.outbox_id, d.attempt_no, d.started_at, d.duration_ms, 'delivered',
           d.status_code, d.response_excerpt, d.location
      FROM done AS d
)
SELECT d.outbox_id, s.state, NULL::timestamptz AS next_attempt_at
  FROM done AS d
  LEFT JOIN settled AS s ON s.id = d.outbox_id;

-- name: record_failure
-- The attempt failed. Next attempt after the backoff, but no later than the
-- end of the retry window, and no earlier than a Retry-After; once the window
-- is over the row is dead. A subscription that stopped being active while
-- the attempt was in flight takes the row with it: cancelled or held.
-- One statement settles the row (lease holder only), records the attempt
-- with its next attempt time, and queues the job for that time.
--
-- A failure other than a 429 starts the subscription's failing stretch, or
-- continues it; one that ends a stretch of %(auto_disable_after)s seconds
-- (0: never) disables the subscription and holds its pending rows, this one
-- included. Rows another statement has locked (being claimed or recorded)
-- are skipped, not waited for: their attempt holds them when it sees the
-- subscription disabled.
WITH plan AS (
    SELECT o.id, o.subscription_id,
           CASE WHEN d.disables THEN 'disabled' ELSE s.state END
               AS subscription_state,
           d.disables,
           coalesce(%(status_code)s::integer, 0) <> 429 AS counted,
           now() >= o.window_started_at + make_interval(secs => %(retry_window)s)
               AS window_over,
           greatest(
               least(now() + make_interval(secs => %(backoff)s),
                     o.window_started_at + make_interval(secs => %(retry_window)s)),
               now() + make_interval(secs => %(retry_after)s)
           ) AS next_at
      FROM outbox AS o
      JOIN subscriptions AS s ON s.id = o.subscription_id
     CROSS JOIN LATERAL (
         SELECT s.state = 'active'
                AND coalesce(%(status_code)s::integer, 0) <> 429
                AND %(auto_disable_after)s > 0
                AND s.failing_since
                    <= now() - make_interval(secs => %(auto_disable_after)s)
                AS disables
     ) AS d
     WHERE o.id = %(outbox_id)s
       -- Read the newest window_started_at: a replay committing while this
       -- attempt was in flight gives the row a fresh window.
       FOR UPDATE OF o
),
failing AS (
    UPDATE subscriptions AS s
       SET failing_since = coalesce(s.failing_since, now()),
           state = CASE WHEN p.disables THEN 'disabled' ELSE s.state END,
           state_reason = CASE
               WHEN p.disables
               THEN 'disabled automatically: every delivery attempt failed since '
                    || to_char(s.failing_since AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                    || '; subscribe the URL again to resume deliveries'
               ELSE s.state_reason
           END,
           state_changed_at = CASE
               WHEN p.disables THEN now() ELSE s.state_changed_at
           END,
           updated_at = CASE WHEN p.disables THEN now() ELSE s.updated_at END
      FROM plan AS p
     WHERE s.id = p.subscription_id AND p.counted AND s.state = 'active'
       AND (s.failing_since IS NULL OR p.disables)
    RETURNING s.state = 'disabled' AS disabled
),
held AS (
    UPDATE outbox AS o
       SET state = 'held', updated_at = now()
     WHERE o.id IN (
         SELECT w.id
           FROM outbox AS w
          WHERE (SELECT p.disables FROM plan AS p)
            AND w.subscription_id = (SELECT p.subscription_id FROM plan AS p)
            AND w.state = 'pending'
            AND w.id <> %(outbox_id)s
            FOR UPDATE SKIP LOCKED
     )
    RETURNING o.id
),
settled AS (
    UPDATE outbox AS o
       SET state = CASE
                       WHEN p.subscription_state = 'unsubscribed' THEN 'cancelled'
                       WHEN p.subscription_state = 'disabled' THEN 'held'
                       WHEN p.window_over THEN 'dead'
                       ELSE 'pending'
                   END,
           next_attempt_at = CASE
                                 WHEN p.subscription_state = 'active'
                                      AND NOT p.window_over
                                 THEN p.next_at
                                 ELSE o.next_attempt_at
                             END,
           finished_at = CASE
                             WHEN p.subscription_state = 'unsubscribed'
                                  OR (p.subscription_state = 'active'
                                      AND p.window_over)
                             THEN now()
                         END,
           lease_token = NULL, lease_until = NULL,
           last_status_code = %(status_code)s, last_error = %(last_error)s,
           updated_at = now()
      FROM plan AS p
     WHERE o.id = p.id AND o.lease_token = %(lease_token)s
    RETURNING o.id, o.state,
              CASE WHEN o.state = 'pending' THEN o.next_attempt_at END
                  AS next_attempt_at
),
recorded AS (
    INSERT INTO delivery_attempts (
        outbox_id, attempt_no, started_at, duration_ms, outcome, status_code,
        error, response_excerpt, location, next_attempt_at
    ) VALUES (
        %(outbox_id)s, %(attempt_no)s, %(started_at)s, %(duration_ms)s,
        %(outcome)s, %(status_code)s, %(error)s, %(response_excerpt)s,
        %(location)s, (SELECT next_attempt_at FROM settled)
    )
)
SELECT s.state, s.next_attempt_at,
       CASE
           WHEN s.state = 'pending'
           THEN ctgo_enqueue_deliveries(ARRAY[s.id], s.next_attempt_at)
       END AS queued,
       coalesce((SELECT f.disabled FROM failing AS f), false) AS disabled,
       (SELECT count(*) FROM held)::integer AS held
  FROM settled AS s;

-- name: record_abandoned
-- The worker is stopping and gave up waiting for this attempt: the row is
-- due again at once, for any worker, with a job queued for it. Only the
-- lease holder may release the row; the attempt is recorded either way.
WITH settled AS (
    UPDATE outbox
       SET state = 'pending', next_attempt_at = now(), updated_at = now(),
           lease_token = NULL, lease_until = NULL, last_error = %(error)s
     WHERE id = %(outbox_id)s AND lease_token = %(lease_token)s
    RETURNING id, state, next_attempt_at
),
recorded AS (
    INSERT INTO delivery_attempts (
        outbox_id, attempt_no, started_at, duration_ms, outcome, status_code,
        error, response_excerpt, location, next_attempt_at
    ) VALUES (
        %(outbox_id)s, %(attempt_no)s, %(started_at)s, %(duration_ms)s,
        %(outcome)s, %(status_code)s, %(error)s, %(response_excerpt)s,
        %(location)s, (SELECT next_attempt_at FROM settled)
    )
)
SELECT s.state, s.next_attempt_at,
       ctgo_enqueue_deliveries(ARRAY[s.id], s.next_attempt_at) AS queued
  FROM settled AS s;

-- name: unsubscribe_gone
-- The receiver answered 410 Gone: it does not want this subscription any more.
-- Locks the subscription first, so two 410s of one subscription queue up here
-- instead of deadlocking on its outbox rows.
UPDATE subscriptions
   SET state = 'unsubscribed', state_reason = 'receiver answered 410 Gone',
       state_changed_at = now(), updated_at = now()
 WHERE id = %(subscription_id)s AND state <> 'unsubscribed';

-- name: cancel_gone
-- With the subscription gone: cancel this row (if we still hold its lease)
-- and every other row of the subscription that waits for an attempt. Rows
-- another attempt holds are cancelled when that attempt is recorded.
UPDATE outbox
   SET state = 'cancelled', finished_at = now(), updated_at = now(),
       lease_token = NULL, lease_until = NULL,
       last_status_code = CASE
                              WHEN id = %(outbox_id)s THEN 410
                              ELSE last_status_code
                          END,
       last_error = 'receiver answered 410 Gone'
 WHERE subscription_id = %(subscription_id)s
   AND (state IN ('pending', 'held')
        OR (id = %(outbox_id)s AND lease_token = %(lease_token)s))
RETURNING id;

-- name: insert_attempt
-- The attempt that got the 410, on record in the same transaction.
INSERT INTO delivery_attempts (
    outbox_id, attempt_no, started_at, duration_ms, outcome, status_code,
    error, response_excerpt, location, next_attempt_at
) VALUES (
    %(outbox_id)s, %(attempt_no)s, %(started_at)s, %(duration_ms)s, %(outcome)s,
    %(status_code)s, %(error)s, %(response_excerpt)s, %(location)s,
    %(next_attempt_at)s
);

-- name: requeue_due_without_job
-- Sweep: queue a job for up to %(limit)s rows that are due, or whose lease ran
-- out, and have no job waiting (a lost job, a replay, a sync that bypassed
-- ctgo_complete_sync). Safe on every worker at once: ids are taken in order
-- and ctgo_enqueue_deliveries keeps one waiting job per row. A delivering
-- row's next_attempt_at is always in its past (only due rows are claimed),
-- so one index range on next_attempt_at finds both kinds. These rows waited
-- already: their jobs go ahead of any backlog (priority 1).
SELECT count(*)::integer AS found,
       ctgo_enqueue_deliveries(
           coalesce(array_agg(d.id ORDER BY d.id), '{}'), NULL, 1
       ) AS queued
  FROM (
      SELECT o.id
        FROM outbox AS o
       WHERE o.state IN ('pending', 'delivering')
         AND o.next_attempt_at <= now()
         AND (o.state = 'pending' OR o.lease_until < now())
         AND NOT EXISTS (
             SELECT 1
               FROM procrastinate_jobs AS j
              WHERE j.queueing_lock = 'outbox:' || o.id AND j.status = 'todo'
         )
       ORDER BY o.id
       LIMIT %(limit)s
  ) AS d;

-- name: release_stray_held
-- Sweep: rows held for a subscription that is active again. Re-enabling
-- releases held rows itself; this catches a row that an attempt in flight
-- put on hold while the re-enable committed. Released rows get a fresh
-- retry window, as on re-enable, and a job.
WITH released AS (
    UPDATE outbox AS o
       SET state = 'pending', next_attempt_at = now(),
           window_started_at = now(), updated_at = now()
      FROM subscriptions AS s
     WHERE o.state = 'held' AND s.id = o.subscription_id AND s.state = 'active'
    RETURNING o.id
)
SELECT count(*)::integer AS released,
       ctgo_enqueue_deliveries(coalesce(array_agg(r.id), '{}')) AS queued
  FROM released AS r;

-- name: queue_statistics
-- Jobs waiting in a queue, and changes to procrastinate_jobs since its
-- statistics were last gathered (the counter lags by a second or so).
SELECT (SELECT count(*)
          FROM procrastinate_jobs
         WHERE queue_name = %(queue)s AND status = 'todo')::bigint AS waiting,
       coalesce((SELECT n_mod_since_analyze
                   FROM pg_stat_user_tables
                  WHERE relid = 'procrastinate_jobs'::regclass), 0)::bigint
           AS changed;

-- name: analyze_jobs
-- Gather procrastinate_jobs statistics now; see refresh_queue_statistics.
ANALYZE procrastinate_jobs;

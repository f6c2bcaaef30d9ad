-- Due rows for a delivery job to take beside its own (see the query
-- claim_more_deliveries): up to p_limit pending rows whose time has come,
-- of active subscriptions with no failing stretch, locked FOR UPDATE and
-- skipping rows that are locked already. The most recently due come first:
-- Procrastinate hands out the oldest jobs first, so batches work from the
-- other end of the line and seldom take a row whose job is being started.
-- Every row keeps its own job until a batch takes it, so none waits longer
-- for this order.
--
-- Right after a large sync the planner's statistics still say that hardly
-- any row is due, and a plan built on them reads and sorts every due row on
-- each call. With sorts and bitmap scans off, only the ordered walk of the
-- outbox_due index is left, which stops after p_limit rows whatever the
-- statistics say; the subscription is a primary-key look-up per row. ROWS
-- tells the calling statement to expect a handful of ids, not a thousand.
CREATE FUNCTION ctgo_due_for_batch(p_limit integer) RETURNS SETOF bigint
    LANGUAGE sql
    ROWS 10
    SET enable_sort = off
    SET enable_bitmapscan = off
AS $$
    SELECT o.id
      FROM outbox AS o
     WHERE o.state = 'pending' AND o.next_attempt_at <= now()
       AND (SELECT s.state = 'active' AND s.failing_since IS NULL
              FROM subscriptions AS s
             WHERE s.id = o.subscription_id)
     ORDER BY o.next_attempt_at DESC
     LIMIT p_limit
       FOR UPDATE OF o SKIP LOCKED
$$;

-- The number the next attempt at a row has within its current retry
-- window: backoff grows with those attempts only, so a replayed row (a new
-- window) starts again from the first delay. Abandoned attempts (the worker
-- stopped) do not count.
CREATE FUNCTION ctgo_window_attempt_no(o outbox) RETURNS bigint
    LANGUAGE sql
    STABLE
AS $$
    SELECT count(*) + 1
      FROM delivery_attempts AS a
     WHERE a.outbox_id = o.id AND a.started_at >= o.window_started_at
       AND a.outcome <> 'abandoned'
$$;

-- Take the lease on one outbox row for one attempt, if the row is due:
-- pending and next_attempt_at has come, or delivering under a lease that ran
-- out (its worker died). FOR UPDATE makes a second claim wait and then see
-- the row taken, so at most one attempt per row is ever in flight.
--
-- A receiver that is failing gets one attempt at a time. Its claims queue on
-- the subscription's row first, then decide in a statement of their own,
-- whose snapshot sees every claim committed before it; a claim that finds
-- the subscription locked by another claim or a recording takes nothing now
-- (its job is queued for later). One statement could not do this: its
-- snapshot would predate the claim it waited for.
--
-- A row whose subscription is no longer active is settled instead of
-- claimed: cancelled when unsubscribed, held when disabled. A lease taken
-- over from a dead worker leaves an 'abandoned' attempt on record; it started
-- when that lease was taken, which is the row's updated_at.
CREATE FUNCTION ctgo_claim_delivery(p_outbox_id bigint, p_lease_seconds float8)
    RETURNS TABLE (
        outbox_id bigint, webhook_id text, body bytea, attempt_count integer,
        window_attempt_no bigint, lease_token uuid, subscription_id bigint,
        workspace_id bigint, state text, taken_over boolean, target_url text,
        secret text
    )
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_subscription bigint;
BEGIN
    SELECT s.id INTO v_subscription
      FROM outbox AS o JOIN subscriptions AS s ON s.id = o.subscription_id
     WHERE o.id = p_outbox_id AND s.failing_since IS NOT NULL;
    IF v_subscription IS NOT NULL THEN
        PERFORM 1 FROM subscriptions AS s
          WHERE s.id = v_subscription
            FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;

    RETURN QUERY
    WITH due AS (
        SELECT o.id, o.state, o.attempt_count, o.updated_at, o.lease_until
          FROM outbox AS o
         WHERE o.id = p_outbox_id
           AND ((o.state = 'pending' AND o.next_attempt_at <= now())
                OR (o.state = 'delivering' AND o.lease_until < now()))
           -- A receiver that is failing gets one attempt at a time, so the slow
           -- or dead receivers of one customer cannot hold every worker slot
           -- while other customers' rows wait. Its first success lifts this.
           AND NOT EXISTS (
               SELECT 1
                 FROM subscriptions AS s
                 JOIN outbox AS busy
                   ON busy.subscription_id = s.id AND busy.state = 'delivering'
                  AND busy.lease_until > now() AND busy.id <> o.id
                WHERE s.id = o.subscription_id AND s.failing_since IS NOT NULL
           )
           FOR UPDATE OF o
    ),
    lost AS (
        INSERT INTO delivery_attempts
            (outbox_id, attempt_no, started_at, duration_ms, outcome, error)
        SELECT d.id, d.attempt_count, d.updated_at,
               (extract(epoch FROM d.lease_until - d.updated_at) * 1000)::integer,
               'abandoned',
               'the worker stopped before recording an outcome; its lease ran out'
          FROM due AS d
         WHERE d.state = 'delivering'
    )
    UPDATE outbox AS o
       SET state = CASE s.state
                       WHEN 'active' THEN 'delivering'
                       WHEN 'disabled' THEN 'held'
                       ELSE 'cancelled'
                   END,
           attempt_count = o.attempt_count + (s.state = 'active')::integer,
           lease_token = CASE WHEN s.state = 'active' THEN gen_random_uuid() END,
           lease_until = CASE
                             WHEN s.state = 'active'
                             THEN now() + make_interval(secs => p_lease_seconds)
                         END,
           finished_at = CASE WHEN s.state = 'unsubscribed' THEN now() END,
           last_error = CASE
                            WHEN s.state = 'unsubscribed' THEN 'unsubscribed'
                            ELSE o.last_error
                        END,
           updated_at = now()
      FROM due AS d, subscriptions AS s
     WHERE o.id = d.id AND s.id = o.subscription_id
    RETURNING o.id AS outbox_id, o.webhook_id, o.body, o.attempt_count,
              ctgo_window_attempt_no(o) AS window_attempt_no, o.lease_token,
              o.subscription_id, o.workspace_id, o.state,
              d.state = 'delivering' AS taken_over, s.target_url, s.secret;
END;
$$;

-- Procrastinate's fetch has the same weakness: after a burst of jobs its
-- plan reads and sorts every waiting job per fetch until procrastinate_jobs
-- is analyzed again. The same two settings leave it the walk of its own
-- (priority, id) index of waiting jobs, which stops at the first one free.
-- The function's body stays Procrastinate's.
ALTER FUNCTION procrastinate_fetch_job_v2(character varying[], bigint)
    SET enable_sort = off
    SET enable_bitmapscan = off;

-- Jobs get a priority: the sweep queues the rows it repairs (a lost job, a
-- lease that ran out) ahead of a backlog instead of behind it.
DROP FUNCTION ctgo_enqueue_deliveries(bigint[], timestamptz);

-- Queue one delivery job per outbox row, at p_run_at (NULL: now), with
-- p_priority (higher runs first; the sweep queues the rows it repairs
-- ahead of the line). A row that already has a queued job keeps it, moved
-- earlier if p_run_at is earlier and raised to p_priority if that is higher.
-- Returns how many jobs were queued or changed.
CREATE FUNCTION ctgo_enqueue_deliveries(
    p_outbox_ids bigint[],
    p_run_at timestamptz DEFAULT NULL,
    p_priority integer DEFAULT 0
) RETURNS integer
    LANGUAGE sql
AS $$
    WITH queued AS (
        INSERT INTO procrastinate_jobs
            (queue_name, task_name, queueing_lock, args, scheduled_at, priority)
        SELECT 'deliveries', 'deliver', 'outbox:' || outbox_id,
               jsonb_build_object('outbox_id', outbox_id), p_run_at, p_priority
        FROM unnest(p_outbox_ids) AS outbox_id
        ON CONFLICT (queueing_lock) WHERE status = 'todo'
        DO UPDATE SET
            scheduled_at = CASE
                WHEN procrastinate_jobs.scheduled_at IS NOT NULL
                     AND (EXCLUDED.scheduled_at IS NULL
                          OR EXCLUDED.scheduled_at < procrastinate_jobs.scheduled_at)
                THEN EXCLUDED.scheduled_at
                ELSE procrastinate_jobs.scheduled_at
            END,
            priority = greatest(procrastinate_jobs.priority, EXCLUDED.priority)
            WHERE (procrastinate_jobs.scheduled_at IS NOT NULL
                   AND (EXCLUDED.scheduled_at IS NULL
                        OR EXCLUDED.scheduled_at < procrastinate_jobs.scheduled_at))
               OR EXCLUDED.priority > procrastinate_jobs.priority
        RETURNING 1
    )
    SELECT count(*)::integer FROM queued
$$;

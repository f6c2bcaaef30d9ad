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

-- Procrastinate's fetch has the same weakness: after a burst of jobs its
-- plan reads and sorts every waiting job per fetch until procrastinate_jobs
-- is analyzed again. The same two settings leave it the walk of its own
-- (priority, id) index of waiting jobs, which stops at the first one free.
-- The function's body stays Procrastinate's.
ALTER FUNCTION procrastinate_fetch_job_v2(character varying[], bigint)
    SET enable_sort = off
    SET enable_bitmapscan = off;

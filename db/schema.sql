-- The reference schema: what a database holds after every migration in
-- db/migrations/ (after Procrastinate's own schema). tests/test_schema.py
-- proves the two agree; change both together.


-- A workspace is one customer of ours (a tenant).
CREATE TABLE workspaces (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Keys are random and long, so one SHA-256 is a sound hash: nothing to
-- brute-force, and lookups stay a single index probe. The prefix is shown
-- to operators and is safe to log.
CREATE TABLE api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES workspaces (id),
    prefix text NOT NULL UNIQUE,
    key_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE INDEX api_keys_workspace ON api_keys (workspace_id);

-- A subscription is never deleted: unsubscribing keeps the row (and its id)
-- for the outbox history. At most one live row per (workspace, target URL).
CREATE TABLE subscriptions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES workspaces (id),
    target_url text NOT NULL CHECK (length(target_url) <= 2048),
    filter_config jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(filter_config) = 'object'),
    secret text NOT NULL,
    state text NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'disabled', 'unsubscribed')),
    state_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    state_changed_at timestamptz,
    -- Set by the first failed delivery attempt after a success (429s aside)
    -- and cleared by the next success: while it is set, every attempt since
    -- has failed. Past AUTO_DISABLE_AFTER the worker disables the subscription.
    failing_since timestamptz,
    UNIQUE (id, workspace_id)
);

CREATE UNIQUE INDEX subscriptions_live_target
    ON subscriptions (workspace_id, target_url)
    WHERE state <> 'unsubscribed';

-- One sync run of one workspace. 'open' while the sync job adds leads;
-- ctgo_complete_sync() turns it 'completed' exactly once.
CREATE TABLE syncs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES workspaces (id),
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    lead_count integer,
    outbox_count integer,
    -- Its filters are in sync_filters (syncs completed before that table
    -- existed have none).
    filters_kept boolean NOT NULL DEFAULT false,
    UNIQUE (id, workspace_id)
);

-- A lead is found once per workspace: lead_id is the platform's stable id.
-- Text caps (in characters) keep every lead's JSON under 48 KiB, so one lead
-- always fits in a webhook body; writers cut longer text (db/README.md).
CREATE TABLE leads (
    workspace_id bigint NOT NULL,
    lead_id text NOT NULL CHECK (length(lead_id) BETWEEN 1 AND 200),
    sync_id bigint NOT NULL,
    stream_id bigint NOT NULL CHECK (stream_id > 0),
    account_id bigint NOT NULL CHECK (account_id > 0),
    source_type text NOT NULL CHECK (source_type IN ('follower', 'liker')),
    feedback_status text CHECK (feedback_status IN ('good', 'bad')),
    match_confidence text NOT NULL
        CHECK (match_confidence IN ('high', 'medium', 'low')),
    handle text NOT NULL CHECK (length(handle) <= 200),
    display_name text CHECK (length(display_name) <= 200),
    profile_url text CHECK (length(profile_url) <= 2048),
    bio text CHECK (length(bio) <= 5000),
    followers bigint CHECK (followers >= 0),
    discovered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, lead_id),
    FOREIGN KEY (sync_id, workspace_id) REFERENCES syncs (id, workspace_id)
);

CREATE INDEX leads_sync ON leads (sync_id);
CREATE INDEX leads_recent ON leads (workspace_id, discovered_at DESC);

-- Leads join open syncs only: one added to a completed sync would never be
-- delivered, so it is refused rather than kept in silence. Checked once per
-- statement, so a COPY of many leads pays for one lookup.
CREATE FUNCTION ctgo_refuse_leads_of_completed_syncs() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    v_sync bigint;
BEGIN
    SELECT s.id INTO v_sync
      FROM syncs AS s
     WHERE s.id IN (SELECT DISTINCT n.sync_id FROM new_leads AS n)
       AND s.state <> 'open'
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'sync % is already completed', v_sync
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'begin a new sync for these leads';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER leads_join_open_syncs_only
    AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_leads
    FOR EACH STATEMENT EXECUTE FUNCTION ctgo_refuse_leads_of_completed_syncs();

-- One webhook body for one subscription: the exact bytes POSTed on every
-- attempt and replay, under a webhook_id that never changes.
--
-- state: pending (waiting for its next attempt), delivering (an attempt holds
-- the lease), delivered, dead (retry window over), cancelled (unsubscribed),
-- held (subscription disabled; released when it is enabled again).
CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id text NOT NULL UNIQUE
        DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
    workspace_id bigint NOT NULL,
    subscription_id bigint NOT NULL,
    sync_id bigint NOT NULL,
    chunk_no integer NOT NULL,
    lead_count integer NOT NULL,
    body bytea NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (
        state IN ('pending', 'delivering', 'delivered', 'dead', 'cancelled', 'held')
    ),
    attempt_count integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    window_started_at timestamptz NOT NULL DEFAULT now(),
    lease_token uuid,
    lease_until timestamptz,
    last_status_code integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (sync_id, subscription_id, chunk_no),
    FOREIGN KEY (subscription_id, workspace_id)
        REFERENCES subscriptions (id, workspace_id),
    FOREIGN KEY (sync_id, workspace_id) REFERENCES syncs (id, workspace_id)
);

CREATE INDEX outbox_open_by_subscription ON outbox (subscription_id)
    WHERE state IN ('pending', 'delivering', 'held');
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE state IN ('pending', 'delivering');
CREATE INDEX outbox_by_workspace ON outbox (workspace_id, created_at DESC);
CREATE INDEX outbox_by_state ON outbox (state, created_at DESC);

-- Every attempt, kept with its row.
CREATE TABLE delivery_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id bigint NOT NULL REFERENCES outbox (id),
    attempt_no integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    outcome text NOT NULL,
    status_code integer,
    error text,
    response_excerpt text,
    location text,
    next_attempt_at timestamptz
);

CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, attempt_no);

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

-- On-call replays: who asked, why, and which rows were touched.
CREATE TABLE outbox_replays (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_by text NOT NULL,
    reason text NOT NULL CHECK (length(reason) > 0),
    forced boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox_replay_rows (
    replay_id bigint NOT NULL REFERENCES outbox_replays (id),
    outbox_id bigint NOT NULL REFERENCES outbox (id),
    previous_state text NOT NULL,
    PRIMARY KEY (replay_id, outbox_id)
);

CREATE INDEX outbox_replay_rows_outbox ON outbox_replay_rows (outbox_id);

-- A lead as delivered: exactly these keys, camelCase, in this order.
CREATE FUNCTION ctgo_lead_payload(l leads) RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'id', l.lead_id,
        'syncId', l.sync_id,
        'streamId', l.stream_id,
        'accountId', l.account_id,
        'sourceType', l.source_type,
        'feedbackStatus', l.feedback_status,
        'matchConfidence', l.match_confidence,
        'handle', l.handle,
        'displayName', l.display_name,
        'profileUrl', l.profile_url,
        'bio', l.bio,
        'followers', l.followers,
        'discoveredAt', to_char(
            l.discovered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        )
    )::text
$$;

-- An integer filter value from a stored filterConfig: NULL means "any".
-- Anything that is not a positive integer (old or hand-edited rows) yields
-- -1, which no lead carries, so a broken filter matches nothing.
CREATE FUNCTION ctgo_filter_id(value jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE
        WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN NULL
        WHEN jsonb_typeof(value) = 'number' AND value::text ~ '^[1-9][0-9]{0,17}$'
            THEN value::text::bigint
        WHEN jsonb_typeof(value) = 'string' AND value #>> '{}' ~ '^[1-9][0-9]{0,17}$'
            THEN (value #>> '{}')::bigint
        ELSE -1
    END
$$;

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

-- Complete a sync: fan its leads out to every matching subscription of the
-- workspace as outbox rows of at most p_max_leads leads and p_max_bytes
-- bytes, and queue their delivery jobs. Call it in the transaction that
-- inserted the leads. Completing a completed sync changes nothing and
-- returns already_completed = true.
--
-- Filters are an AND of the fields present; a field holding JSON null is
-- absent. A filter holding a non-null segmentId (removed in amendment-12)
-- matches nothing. Active subscriptions get pending rows and jobs, disabled
-- ones held rows (no job), unsubscribed ones nothing.
--
-- Chunking by size: with L the largest lead (plus its comma), a lead starts
-- a new chunk when the bytes before it cross a multiple of
-- p_max_bytes - 2 - L; no chunk can then exceed p_max_bytes, brackets
-- included, and chunks are formed in one set-based pass.
CREATE FUNCTION ctgo_complete_sync(
    p_sync_id bigint,
    p_max_leads integer DEFAULT 100,
    p_max_bytes integer DEFAULT 1048576
) RETURNS TABLE (
    sync_id bigint,
    lead_count integer,
    outbox_count integer,
    already_completed boolean
)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_sync syncs%ROWTYPE;
    v_leads integer;
    v_largest integer;
    v_budget bigint;
    v_rows integer;
    v_due bigint[];
BEGIN
    IF coalesce(p_max_leads, 0) < 1 OR coalesce(p_max_bytes, 0) < 1 THEN
        RAISE EXCEPTION 'the most leads and bytes per body must be above zero'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT * INTO v_sync FROM syncs AS s WHERE s.id = p_sync_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync % does not exist', p_sync_id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF v_sync.state = 'completed' THEN
        RETURN QUERY SELECT v_sync.id, v_sync.lead_count, v_sync.outbox_count, true;
        RETURN;
    END IF;

    -- Unsubscribing, disabling or enabling a subscription now waits for this
    -- transaction and then sees its rows, so it cancels, holds or releases
    -- them like older ones; unlocked, a state change committed meanwhile
    -- would miss the rows written for the state read before it.
    PERFORM 1 FROM subscriptions AS s
      WHERE s.workspace_id = v_sync.workspace_id
        AND s.state IN ('active', 'disabled')
      ORDER BY s.id
        FOR SHARE;

    SELECT count(*), coalesce(max(octet_length(ctgo_lead_payload(l))), 0) + 1
        INTO v_leads, v_largest
        FROM leads AS l WHERE l.sync_id = p_sync_id;
    v_budget := p_max_bytes - 2 - v_largest;
    IF v_leads > 0 AND v_budget <= 0 THEN
        RAISE EXCEPTION 'a lead of % bytes does not fit in a body of % bytes',
            v_largest - 1, p_max_bytes
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'raise MAX_BODY_BYTES or shorten the lead''s text fields';
    END IF;

    -- Filters are decoded once per subscription and payloads built once per
    -- lead. Subscriptions with the same filter get the same chunks, so
    -- chunks are formed once per distinct filter and copied to each of its
    -- subscriptions; the per-pair work carries only numbers.
    WITH filters AS MATERIALIZED (
        SELECT row_number() OVER () AS filter_no,
               f.stream_id, f.account_id, f.source_type, f.feedback_status,
               f.match_confidence,
               array_agg(f.id ORDER BY f.id) AS subscription_ids,
               array_agg(f.state ORDER BY f.id) AS subscription_states
        FROM (
            SELECT s.id, s.state,
                   ctgo_filter_id(s.filter_config -> 'streamId') AS stream_id,
                   ctgo_filter_id(s.filter_config -> 'accountId') AS account_id,
                   s.filter_config ->> 'sourceType' AS source_type,
                   s.filter_config ->> 'feedbackStatus' AS feedback_status,
                   s.filter_config ->> 'matchConfidence' AS match_confidence
            FROM subscriptions AS s
            WHERE s.workspace_id = v_sync.workspace_id
              AND s.state IN ('active', 'disabled')
              AND s.filter_config ->> 'segmentId' IS NULL
        ) AS f
        GROUP BY f.stream_id, f.account_id, f.source_type, f.feedback_status,
                 f.match_confidence
    ),
    payloads AS MATERIALIZED (
        SELECT row_number() OVER (ORDER BY l.discovered_at, l.lead_id) AS n,
               l.stream_id, l.account_id, l.source_type, l.feedback_status,
               l.match_confidence, p.payload, octet_length(p.payload) + 1 AS size
        FROM leads AS l
        CROSS JOIN LATERAL (SELECT ctgo_lead_payload(l) AS payload) AS p
        WHERE l.sync_id = p_sync_id
    ),
    matches AS (
        SELECT f.filter_no, p.n, p.size
        FROM filters AS f
        JOIN payloads AS p
          ON (f.stream_id IS NULL OR p.stream_id = f.stream_id)
         AND (f.account_id IS NULL OR p.account_id = f.account_id)
         AND (f.source_type IS NULL OR p.source_type = f.source_type)
         AND (f.feedback_status IS NULL OR p.feedback_status = f.feedback_status)
         AND (f.match_confidence IS NULL OR p.match_confidence = f.match_confidence)
    ),
    by_bytes AS (
        SELECT matches.*,
               (sum(size) OVER (
                   PARTITION BY filter_no ORDER BY n ROWS UNBOUNDED PRECEDING
               ) - size) / v_budget AS byte_bucket
        FROM matches
    ),
    by_count AS (
        SELECT by_bytes.*,
               (row_number() OVER (
                   PARTITION BY filter_no, byte_bucket ORDER BY n
               ) - 1) / p_max_leads AS count_bucket
        FROM by_bytes
    ),
    chunks AS MATERIALIZED (
        SELECT b.filter_no,
               (dense_rank() OVER (
                   PARTITION BY b.filter_no ORDER BY b.byte_bucket, b.count_bucket
               ) - 1)::integer AS chunk_no,
               count(*)::integer AS leads_in_chunk,
               convert_to(
                   '[' || string_agg(p.payload, ',' ORDER BY b.n) || ']', 'UTF8'
               ) AS body
        FROM by_count AS b
        JOIN payloads AS p ON p.n = b.n
        GROUP BY b.filter_no, b.byte_bucket, b.count_bucket
    ),
    written AS (
        INSERT INTO outbox AS o (
            workspace_id, subscription_id, sync_id, chunk_no, lead_count, body, state
        )
        SELECT v_sync.workspace_id, s.id, p_sync_id, c.chunk_no,
               c.leads_in_chunk, c.body,
               CASE s.state WHEN 'disabled' THEN 'held' ELSE 'pending' END
        FROM chunks AS c
        -- Scalar look-ups rather than a join: chunks are read once, however
        -- the planner would have ordered a join it cannot estimate.
        CROSS JOIN LATERAL unnest(
            (SELECT f.subscription_ids FROM filters AS f
              WHERE f.filter_no = c.filter_no),
            (SELECT f.subscription_states FROM filters AS f
              WHERE f.filter_no = c.filter_no)
        ) AS s (id, state)
        ON CONFLICT ON CONSTRAINT outbox_sync_id_subscription_id_chunk_no_key
            DO NOTHING
        RETURNING o.id, o.state
    )
    SELECT count(*)::integer, array_agg(w.id) FILTER (WHERE w.state = 'pending')
        INTO v_rows, v_due
        FROM written AS w;

    PERFORM ctgo_enqueue_deliveries(coalesce(v_due, '{}'));

    UPDATE syncs AS s
       SET state = 'completed', completed_at = now(),
           lead_count = v_leads, outbox_count = v_rows
     WHERE s.id = p_sync_id;

    RETURN QUERY SELECT p_sync_id, v_leads, v_rows, false;
END;
$$;

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

-- The filters a sync was fanned out with, kept so that on call can check a
-- sync's deliveries against the filters that chose them, even after the
-- customer edits a subscription. One row per subscription that took part
-- (active or disabled when the sync completed); written in the completing
-- transaction, while ctgo_complete_sync holds those subscriptions FOR SHARE.
CREATE TABLE sync_filters (
    sync_id bigint NOT NULL REFERENCES syncs (id),
    subscription_id bigint NOT NULL REFERENCES subscriptions (id),
    state text NOT NULL,
    filter_config jsonb NOT NULL,
    PRIMARY KEY (sync_id, subscription_id)
);

CREATE FUNCTION ctgo_keep_sync_filters() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO sync_filters (sync_id, subscription_id, state, filter_config)
    SELECT NEW.id, s.id, s.state, s.filter_config
      FROM subscriptions AS s
     WHERE s.workspace_id = NEW.workspace_id
       AND s.state IN ('active', 'disabled');
    NEW.filters_kept := true;
    RETURN NEW;
END;
$$;

CREATE TRIGGER syncs_keep_filters
    BEFORE UPDATE OF state ON syncs
    FOR EACH ROW
    WHEN (OLD.state = 'open' AND NEW.state = 'completed')
    EXECUTE FUNCTION ctgo_keep_sync_filters();

-- API processes keep the workspaces of keys they have just checked. Any
-- change to api_keys (a revocation above all) is announced on the channel
-- ctgo_api_keys when its transaction commits, and every listening process
-- forgets what it kept. The payload is empty: revocations are rare, and
-- forgetting everything needs no key material on the wire.
CREATE FUNCTION ctgo_announce_api_key_change() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('ctgo_api_keys', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_announce_change
    AFTER UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT
    EXECUTE FUNCTION ctgo_announce_api_key_change();

-- Also when changes are applied with session_replication_role = replica
-- (logical replication, some restore tools): a revocation is one wherever
-- it comes from.
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_announce_change;

-- name: subscribe
-- Create the workspace's live subscription for a target URL, or give the one
-- that exists the new filter. Concurrent calls for the same URL meet on the
-- partial unique index subscriptions_live_target and end on one row. The
-- secret of an existing row is kept; a disabled row becomes active again,
-- with a failing stretch of its own from then on, and its held outbox rows
-- are released as release_held does, in this same statement (one round
-- trip, no transaction of its own). xmax is 0 only on a row this statement
-- inserted.
WITH upserted AS (
    INSERT INTO subscriptions AS s (workspace_id, target_url, filter_config, secret)
    VALUES (%(workspace_id)s, %(target_url)s, %(filter_config)s, %(secret)s)
    ON CONFLICT (workspace_id, target_url) WHERE state <> 'unsubscribed'
    DO UPDATE SET
        filter_config = EXCLUDED.filter_config,
        state = 'active',
        state_reason = NULL,
        state_changed_at = CASE
            WHEN s.state = 'active' THEN s.state_changed_at ELSE now()
        END,
        failing_since = CASE WHEN s.state = 'active' THEN s.failing_since END,
        updated_at = now()
    RETURNING s.id, s.workspace_id, s.target_url, s.filter_config, s.secret,
              s.state, s.state_reason, s.created_at, s.updated_at,
              s.state_changed_at, (s.xmax = 0) AS created
),
released AS (
    UPDATE outbox AS o
       SET state = 'pending',
           next_attempt_at = now(),
           window_started_at = now(),
           updated_at = now()
      FROM upserted AS u
     WHERE o.subscription_id = u.id AND o.state = 'held'
    RETURNING o.id
),
queued AS (
    -- Most subscribes release nothing: no jobs to queue, no call.
    SELECT count(*)::integer AS released,
           CASE WHEN count(*) > 0
                THEN ctgo_enqueue_deliveries(array_agg(r.id))
                ELSE 0
           END AS queued
      FROM released AS r
)
SELECT u.*, q.released FROM upserted AS u, queued AS q;

-- name: release_held
-- Put the held outbox rows of an active subscription back in line and queue
-- their delivery jobs. Time spent held does not count against the retry
-- window, so each released row starts a fresh one.
WITH released AS (
    UPDATE outbox AS o
       SET state = 'pending',
           next_attempt_at = now(),
           window_started_at = now(),
           updated_at = now()
      FROM subscriptions AS s
     WHERE o.subscription_id = %(subscription_id)s
       AND o.state = 'held'
       AND s.id = o.subscription_id
       AND s.state = 'active'
    RETURNING o.id
)
SELECT count(*)::integer AS released,
       ctgo_enqueue_deliveries(coalesce(array_agg(id), '{}')) AS queued
  FROM released;

-- name: unsubscribe
-- Soft-delete a subscription of the workspace and cancel its open outbox
-- rows in the same statement. Rows being delivered right now are left to
-- their attempt, which cancels them once it sees the subscription is gone.
-- No row back: no such subscription in this workspace. changed is false
-- when it was already unsubscribed.
WITH gone AS (
    UPDATE subscriptions
       SET state = 'unsubscribed',
           state_reason = %(reason)s,
           state_changed_at = now(),
           updated_at = now()
     WHERE id = %(subscription_id)s
       AND workspace_id = %(workspace_id)s
       AND state <> 'unsubscribed'
    RETURNING id
),
cancelled AS (
    UPDATE outbox AS o
       SET state = 'cancelled',
           finished_at = now(),
           last_error = 'unsubscribed',
           updated_at = now()
      FROM gone
     WHERE o.subscription_id = gone.id
       AND o.state IN ('pending', 'held')
    RETURNING o.id
)
SELECT s.id,
       EXISTS (SELECT 1 FROM gone) AS changed,
       (SELECT count(*) FROM cancelled)::integer AS cancelled
  FROM subscriptions AS s
 WHERE s.id = %(subscription_id)s AND s.workspace_id = %(workspace_id)s;

-- name: list_subscriptions
-- The workspace's subscriptions that still receive (or hold) leads.
SELECT id, workspace_id, target_url, filter_config, secret, state, state_reason,
       created_at, updated_at, state_changed_at
  FROM subscriptions
 WHERE workspace_id = %(workspace_id)s AND state <> 'unsubscribed'
 ORDER BY id;

-- name: get_subscription
-- One subscription of the workspace, whatever its state.
SELECT id, workspace_id, target_url, filter_config, secret, state, state_reason,
       created_at, updated_at, state_changed_at
  FROM subscriptions
 WHERE id = %(subscription_id)s AND workspace_id = %(workspace_id)s;

-- name: sample_leads
-- The workspace's most recent leads a filter matches, each exactly as a
-- delivery carries it. The conditions are those of ctgo_complete_sync().
SELECT ctgo_lead_payload(l) AS payload
  FROM leads AS l
 WHERE l.workspace_id = %(workspace_id)s
   AND (%(stream_id)s::bigint IS NULL OR l.stream_id = %(stream_id)s::bigint)
   AND (%(account_id)s::bigint IS NULL OR l.account_id = %(account_id)s::bigint)
   AND (%(source_type)s::text IS NULL OR l.source_type = %(source_type)s::text)
   AND (%(feedback_status)s::text IS NULL
        OR l.feedback_status = %(feedback_status)s::text)
   AND (%(match_confidence)s::text IS NULL
        OR l.match_confidence = %(match_confidence)s::text)
 ORDER BY l.discovered_at DESC, l.lead_id DESC
 LIMIT %(limit)s;

-- name: example_lead
-- A made-up lead in the delivered shape, built by the same function that
-- builds real deliveries. %(lead)s holds leads columns by name.
SELECT ctgo_lead_payload(
           jsonb_populate_record(
               NULL::leads,
               %(lead)s::jsonb || jsonb_build_object('discovered_at', now())
           )
       ) AS payload;

-- name: oncall_select_rows
-- Outbox rows matching every filter given (a NULL filter matches anything),
-- newest first. Explicit references (ids, webhook ids) select the rows they
-- name. The body is left out: only its size is read.
SELECT o.id, o.webhook_id, o.state, o.workspace_id, o.subscription_id,
       s.state AS subscription_state, o.sync_id, o.chunk_no, o.lead_count,
       octet_length(o.body) AS body_bytes, o.attempt_count, o.last_status_code,
       o.last_error, o.next_attempt_at, o.created_at, o.updated_at, o.finished_at
  FROM outbox AS o
  JOIN subscriptions AS s ON s.id = o.subscription_id
 WHERE (NOT %(by_reference)s
        OR o.id = ANY (%(ids)s::bigint[])
        OR o.webhook_id = ANY (%(webhook_ids)s::text[]))
   AND (%(states)s::text[] IS NULL OR o.state = ANY (%(states)s::text[]))
   AND (%(workspace_id)s::bigint IS NULL OR o.workspace_id = %(workspace_id)s)
   AND (%(subscription_id)s::bigint IS NULL
        OR o.subscription_id = %(subscription_id)s)
   AND (%(sync_id)s::bigint IS NULL OR o.sync_id = %(sync_id)s)
   AND (%(since)s::timestamptz IS NULL OR o.created_at >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR o.created_at < %(until)s)
 ORDER BY o.created_at DESC, o.id DESC
 LIMIT %(limit)s;

-- name: oncall_get_row
-- One outbox row by id or webhook id, with the first bytes of its body, its
-- subscription (never the secret) and the wake-up job queued for it, if any.
SELECT o.id, o.webhook_id, o.state, o.workspace_id, o.subscription_id, o.sync_id,
       o.chunk_no, o.lead_count, octet_length(o.body) AS body_bytes,
       substring(o.body FROM 1 FOR %(head_bytes)s) AS body_head,
       o.attempt_count, o.next_attempt_at, o.window_started_at, o.lease_until,
       o.last_status_code, o.last_error, o.created_at, o.updated_at, o.finished_at,
       s.target_url, s.state AS subscription_state, s.state_reason,
       s.state_changed_at,
       j.id AS job_id, j.scheduled_at AS job_scheduled_at
  FROM outbox AS o
  JOIN subscriptions AS s ON s.id = o.subscription_id
  LEFT JOIN procrastinate_jobs AS j
         ON j.queueing_lock = 'outbox:' || o.id AND j.status = 'todo'
 WHERE o.id = %(id)s OR o.webhook_id = %(webhook_id)s;

-- name: oncall_row_attempts
-- Every delivery attempt of one row, oldest first.
SELECT attempt_no, started_at, duration_ms, outcome, status_code, error,
       response_excerpt, location, next_attempt_at
  FROM delivery_attempts
 WHERE outbox_id = %(outbox_id)s
 ORDER BY attempt_no, id;

-- name: oncall_row_replays
-- Every replay that touched one row, oldest first.
SELECT r.id, r.created_at, r.requested_by, r.reason, r.forced, rr.previous_state
  FROM outbox_replay_rows AS rr
  JOIN outbox_replays AS r ON r.id = rr.replay_id
 WHERE rr.outbox_id = %(outbox_id)s
 ORDER BY r.created_at, r.id;

-- name: oncall_create_replay
-- Record who replays, and why, before any row is touched.
INSERT INTO outbox_replays (requested_by, reason, forced)
VALUES (%(requested_by)s, %(reason)s, %(forced)s)
RETURNING id, created_at;

-- name: oncall_replay_rows
-- Give the rows among %(ids)s a fresh retry window, due now, and record them
-- under the replay. Delivered rows and rows of a subscription that is not
-- active are touched only when forced. A row that an attempt holds under its
-- lease stays 'delivering' with its lease: that attempt finishes (a second
-- concurrent POST is never started), and if it fails its retry falls in the
-- fresh window. The row lock makes concurrent replays and claims take turns.
WITH target AS (
    SELECT o.id, o.state
      FROM outbox AS o
      JOIN subscriptions AS s ON s.id = o.subscription_id
     WHERE o.id = ANY (%(ids)s::bigint[])
       AND (%(forced)s OR (o.state <> 'delivered' AND s.state = 'active'))
     ORDER BY o.id
       FOR NO KEY UPDATE OF o
),
replayed AS (
    UPDATE outbox AS o
       SET state = CASE o.state WHEN 'delivering' THEN 'delivering' ELSE 'pending' END,
           lease_token = CASE o.state WHEN 'delivering' THEN o.lease_token END,
           lease_until = CASE o.state WHEN 'delivering' THEN o.lease_until END,
           next_attempt_at = now(),
           window_started_at = now(),
           finished_at = NULL,
           updated_at = now()
      FROM target AS t
     WHERE o.id = t.id
    RETURNING o.id, t.state AS previous_state
)
INSERT INTO outbox_replay_rows (replay_id, outbox_id, previous_state)
SELECT %(replay_id)s, id, previous_state FROM replayed
RETURNING outbox_id, previous_state;

-- name: oncall_sync
-- One sync with what it recorded at completion and what exists now.
SELECT s.id, s.workspace_id, s.state, s.created_at, s.completed_at,
       s.lead_count, s.outbox_count, s.filters_kept,
       (SELECT count(*) FROM leads AS l WHERE l.sync_id = s.id) AS leads_now,
       (SELECT count(*) FROM outbox AS o WHERE o.sync_id = s.id) AS rows_now
  FROM syncs AS s
 WHERE s.id = %(sync_id)s;

-- name: oncall_reconcile
-- Per subscription of the sync's workspace: the sync's leads its filter
-- matches (the rules of ctgo_complete_sync) and its outbox rows of the sync
-- by state. The filter is the one kept when the sync completed (took_part
-- says the subscription was fanned out to), else today's. Long-unsubscribed
-- subscriptions without rows are left out.
WITH sync AS (
    SELECT id, workspace_id, completed_at FROM syncs WHERE id = %(sync_id)s
),
kept AS (
    SELECT f.subscription_id, f.filter_config
      FROM sync_filters AS f
     WHERE f.sync_id = %(sync_id)s
),
written AS (
    SELECT o.subscription_id,
           count(*) AS rows,
           sum(o.lead_count) AS leads,
           count(*) FILTER (WHERE o.state = 'delivered') AS delivered,
           coalesce(sum(o.lead_count) FILTER (WHERE o.state = 'delivered'), 0)
               AS delivered_leads,
           count(*) FILTER (WHERE o.state IN ('pending', 'delivering')) AS pending,
           count(*) FILTER (WHERE o.state = 'dead') AS dead,
           coalesce(sum(o.lead_count) FILTER (WHERE o.state = 'dead'), 0)
               AS dead_leads,
           count(*) FILTER (WHERE o.state = 'cancelled') AS cancelled,
           coalesce(sum(o.lead_count) FILTER (WHERE o.state = 'cancelled'), 0)
               AS cancelled_leads,
           count(*) FILTER (WHERE o.state = 'held') AS held,
           min(o.next_attempt_at) FILTER (
               WHERE o.state IN ('pending', 'delivering')
           ) AS next_attempt_at
      FROM outbox AS o
     WHERE o.sync_id = %(sync_id)s
     GROUP BY o.subscription_id
),
subs AS (
    SELECT s.id, s.state, s.state_reason, s.target_url, s.created_at,
           s.updated_at, s.state_changed_at, k.subscription_id IS NOT NULL
               AS took_part,
           f.config ->> 'segmentId' IS NOT NULL AS legacy_filter,
           ctgo_filter_id(f.config -> 'streamId') AS stream_id,
           ctgo_filter_id(f.config -> 'accountId') AS account_id,
           f.config ->> 'sourceType' AS source_type,
           f.config ->> 'feedbackStatus' AS feedback_status,
           f.config ->> 'matchConfidence' AS match_confidence
      FROM subscriptions AS s
      JOIN sync ON s.workspace_id = sync.workspace_id
      LEFT JOIN kept AS k ON k.subscription_id = s.id
     CROSS JOIN LATERAL (
         SELECT coalesce(k.filter_config, s.filter_config) AS config
     ) AS f
     WHERE s.state <> 'unsubscribed'
        OR s.state_changed_at >= sync.completed_at
        OR s.id IN (SELECT subscription_id FROM written)
        OR k.subscription_id IS NOT NULL
),
matched AS (
    SELECT s.id, count(l.lead_id) AS leads
      FROM subs AS s
      LEFT JOIN leads AS l
        ON l.sync_id = %(sync_id)s
       AND NOT s.legacy_filter
       AND (s.stream_id IS NULL OR l.stream_id = s.stream_id)
       AND (s.account_id IS NULL OR l.account_id = s.account_id)
       AND (s.source_type IS NULL OR l.source_type = s.source_type)
       AND (s.feedback_status IS NULL
            OR l.feedback_status IS NOT DISTINCT FROM s.feedback_status)
       AND (s.match_confidence IS NULL OR l.match_confidence = s.match_confidence)
     GROUP BY s.id
)
SELECT s.id AS subscription_id, s.state, s.state_reason, s.target_url,
       s.created_at, s.updated_at, s.state_changed_at, s.took_part,
       s.legacy_filter,
       m.leads AS matched,
       coalesce(w.rows, 0) AS rows,
       coalesce(w.leads, 0) AS leads,
       coalesce(w.delivered, 0) AS delivered,
       coalesce(w.delivered_leads, 0) AS delivered_leads,
       coalesce(w.pending, 0) AS pending,
       coalesce(w.dead, 0) AS dead,
       coalesce(w.dead_leads, 0) AS dead_leads,
       coalesce(w.cancelled, 0) AS cancelled,
       coalesce(w.cancelled_leads, 0) AS cancelled_leads,
       coalesce(w.held, 0) AS held,
       w.next_attempt_at
  FROM subs AS s
  JOIN matched AS m ON m.id = s.id
  LEFT JOIN written AS w ON w.subscription_id = s.id
 ORDER BY s.id;

-- name: oncall_subscriptions
-- Subscriptions of every workspace matching the filters given (NULL: any),
-- oldest first, with their held rows and rows waiting for an attempt. The
-- counts read the open rows only (outbox_open_by_subscription), never the
-- delivered history. The secret is left out.
SELECT s.id, s.workspace_id, s.target_url, s.state, s.state_reason,
       s.state_changed_at, s.failing_since,
       (SELECT count(*) FROM outbox AS o
         WHERE o.subscription_id = s.id AND o.state = 'held')::integer AS held,
       (SELECT count(*) FROM outbox AS o
         WHERE o.subscription_id = s.id
           AND o.state IN ('pending', 'delivering'))::integer AS waiting
  FROM subscriptions AS s
 WHERE (%(ids)s::bigint[] IS NULL OR s.id = ANY (%(ids)s::bigint[]))
   AND (%(states)s::text[] IS NULL OR s.state = ANY (%(states)s::text[]))
   AND (%(workspace_id)s::bigint IS NULL OR s.workspace_id = %(workspace_id)s)
   AND (NOT %(failing)s OR s.failing_since IS NOT NULL)
 ORDER BY s.id
 LIMIT %(limit)s;

-- name: oncall_enable_subscription
-- Enable a disabled subscription, with a fresh failing stretch; run
-- release_held after it in the same transaction. No row back: no such
-- subscription; changed is false when it was not disabled.
WITH enabled AS (
    UPDATE subscriptions
       SET state = 'active', state_reason = %(reason)s, failing_since = NULL,
           state_changed_at = now(), updated_at = now()
     WHERE id = %(subscription_id)s AND state = 'disabled'
    RETURNING id
)
SELECT s.id, s.workspace_id,
       CASE WHEN e.id IS NULL THEN s.state ELSE 'active' END AS state,
       e.id IS NOT NULL AS changed, 0 AS rows
  FROM subscriptions AS s
  LEFT JOIN enabled AS e ON e.id = s.id
 WHERE s.id = %(subscription_id)s;

-- name: oncall_disable_subscription
-- Disable an active subscription and hold its pending rows: nothing is
-- attempted or dropped until it is enabled again. Rows in flight are held
-- when their attempt is recorded. No row back: no such subscription;
-- changed is false when it was not active.
WITH disabled AS (
    UPDATE subscriptions
       SET state = 'disabled', state_reason = %(reason)s,
           state_changed_at = now(), updated_at = now()
     WHERE id = %(subscription_id)s AND state = 'active'
    RETURNING id
),
held AS (
    UPDATE outbox AS o
       SET state = 'held', updated_at = now()
      FROM disabled AS d
     WHERE o.subscription_id = d.id AND o.state = 'pending'
    RETURNING o.id
)
SELECT s.id, s.workspace_id,
       CASE WHEN d.id IS NULL THEN s.state ELSE 'disabled' END AS state,
       d.id IS NOT NULL AS changed,
       (SELECT count(*) FROM held)::integer AS rows
  FROM subscriptions AS s
  LEFT JOIN disabled AS d ON d.id = s.id
 WHERE s.id = %(subscription_id)s;

-- name: begin_sync
-- Open a sync for a workspace; no row when the workspace does not exist.
INSERT INTO syncs (workspace_id)
SELECT w.id FROM workspaces AS w WHERE w.id = %(workspace_id)s
RETURNING id;

-- name: create_lead_staging
-- A private table the leads are copied into before they join the sync, so
-- leads already known to the workspace can be skipped instead of failing.
CREATE TEMPORARY TABLE ctgo_staged_leads (
    lead_id text,
    stream_id bigint,
    account_id bigint,
    source_type text,
    feedback_status text,
    match_confidence text,
    handle text,
    display_name text,
    profile_url text,
    bio text,
    followers bigint,
    discovered_at timestamptz
) ON COMMIT DROP;

-- name: copy_staged_leads
-- Columns in the order of app.outbox.leads.stored_row.
COPY pg_temp.ctgo_staged_leads (
    lead_id, stream_id, account_id, source_type, feedback_status,
    match_confidence, handle, display_name, profile_url, bio, followers,
    discovered_at
) FROM STDIN;

-- name: insert_staged_leads
-- Add the staged leads to the sync; a lead id the workspace already has
-- (from an earlier sync) is skipped. Without a discoveredAt, now() it is.
WITH written AS (
    INSERT INTO leads (
        workspace_id, lead_id, sync_id, stream_id, account_id, source_type,
        feedback_status, match_confidence, handle, display_name, profile_url,
        bio, followers, discovered_at
    )
    SELECT %(workspace_id)s, s.lead_id, %(sync_id)s, s.stream_id, s.account_id,
           s.source_type, s.feedback_status, s.match_confidence, s.handle,
           s.display_name, s.profile_url, s.bio, s.followers,
           coalesce(s.discovered_at, now())
      FROM pg_temp.ctgo_staged_leads AS s
    ON CONFLICT (workspace_id, lead_id) DO NOTHING
    RETURNING 1
)
SELECT count(*)::integer AS written FROM written;

-- name: drop_lead_staging
-- Dropped at once, so a second ingest in the same transaction starts clean.
DROP TABLE pg_temp.ctgo_staged_leads;

-- name: complete_sync
-- Fan the sync's leads out to matching subscriptions (see the function).
SELECT sync_id, lead_count, outbox_count, already_completed
  FROM ctgo_complete_sync(%(sync_id)s, %(max_leads)s, %(max_bytes)s);

-- name: create_workspace
-- Create a workspace (one customer of ours).
INSERT INTO workspaces (name) VALUES (%(name)s)
RETURNING id, name, created_at;

-- name: workspace_exists
SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = %(workspace_id)s) AS exists;

-- name: create_api_key
-- Store a new key by its hash; the key itself is never stored.
INSERT INTO api_keys (workspace_id, prefix, key_hash)
VALUES (%(workspace_id)s, %(prefix)s, %(key_hash)s)
RETURNING id, workspace_id, prefix, created_at;

-- name: revoke_api_key
-- Revoke by full key hash or by prefix; already revoked keys stay as they are
-- (newly_revoked is false for them).
UPDATE api_keys
   SET revoked_at = coalesce(revoked_at, now())
 WHERE key_hash = %(key_hash)s OR prefix = %(prefix)s
RETURNING id, workspace_id, prefix, revoked_at, revoked_at = now() AS newly_revoked;

-- name: authenticate_api_key
-- The workspace of a live key, found by the hash of the presented key.
SELECT k.workspace_id, k.prefix
  FROM api_keys AS k
 WHERE k.key_hash = %(key_hash)s AND k.revoked_at IS NULL;

-- name: listen_key_changes
-- Hear of every committed change to api_keys (see ctgo_announce_api_key_change).
LISTEN ctgo_api_keys;

-- name: key_changes_announced
-- Whether changes to api_keys are announced: the trigger of migration 0006
-- exists and fires on ordinary sessions (enabled 'O'rigin or 'A'lways; not
-- 'D'isabled, nor 'R'eplica only). A round trip that also proves the
-- connection lives.
SELECT EXISTS (
    SELECT 1
      FROM pg_trigger
     WHERE tgrelid = to_regclass('api_keys')
       AND tgname = 'api_keys_announce_change'
       AND tgenabled IN ('O', 'A')
) AS announced;

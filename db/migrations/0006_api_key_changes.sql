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

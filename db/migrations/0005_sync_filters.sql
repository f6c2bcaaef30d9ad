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

-- Syncs completed before this table existed have no kept filters.
ALTER TABLE syncs ADD COLUMN filters_kept boolean NOT NULL DEFAULT false;

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

-- v2 amendment-12 renamed the filter field trackedAccountId to accountId.
-- Stored filters are rewritten under the new name; an accountId already
-- present wins over the old field.
UPDATE subscriptions
   SET filter_config = jsonb_build_object('accountId', filter_config -> 'trackedAccountId')
                       || (filter_config - 'trackedAccountId'),
       updated_at = now()
 WHERE filter_config ? 'trackedAccountId';

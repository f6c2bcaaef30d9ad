-- name: monitoring_outbox
-- What /metrics reports on the outbox, read at scrape time: rows waiting by
-- state, the age of the oldest row not yet delivered (pending or being
-- delivered), and how long the longest-due row has waited past its time.
-- Every figure is an index probe or a scan of open rows only (outbox_by_state,
-- outbox_due); delivered history, however large, is never counted.
SELECT (SELECT count(*) FROM outbox WHERE state = 'pending')::bigint AS pending,
       (SELECT count(*) FROM outbox WHERE state = 'delivering')::bigint
           AS delivering,
       (SELECT count(*) FROM outbox WHERE state = 'held')::bigint AS held,
       extract(epoch FROM now() - least(
           (SELECT min(created_at) FROM outbox WHERE state = 'pending'),
           (SELECT min(created_at) FROM outbox WHERE state = 'delivering')
       ))::float8 AS oldest_pending_age,
       extract(epoch FROM now() - (
           SELECT min(next_attempt_at) FROM outbox
            WHERE state = 'pending' AND next_attempt_at <= now()
       ))::float8 AS oldest_due_age;

-- name: monitoring_subscriptions
-- Subscriptions by state, for /metrics.
SELECT state, count(*)::bigint AS subscriptions
  FROM subscriptions
 GROUP BY state;

-- The product page's questions, as views over events.

-- The features that are paid: the product page's examples. Edit the rows to match your
-- plans (INSERT INTO paid_features VALUES ('sso'); DELETE … WHERE feature = 'webhook').
CREATE TABLE paid_features (
    feature text PRIMARY KEY
);
INSERT INTO paid_features (feature) VALUES ('export'), ('api'), ('webhook');

-- Daily feature usage per account: feature.used events per account, UTC day and feature;
-- `uses` sums the events' `count` (1 when an event has none).
CREATE VIEW daily_feature_usage AS
SELECT account_id,
       (received_at AT TIME ZONE 'UTC')::date AS day,
       data ->> 'feature' AS feature,
       count(*) AS events,
       sum(CASE WHEN jsonb_typeof(data -> 'count') = 'number'
                THEN (data ->> 'count')::numeric ELSE 1 END) AS uses,
       count(DISTINCT user_id) AS users
FROM events
WHERE name = 'feature.used' AND account_id IS NOT NULL
GROUP BY 1, 2, 3;

-- Paid-feature use per account and ISO week (from Monday, UTC).
CREATE VIEW weekly_paid_feature_usage AS
SELECT u.account_id,
       date_trunc('week', u.day)::date AS week,
       sum(u.events) AS events,
       sum(u.uses) AS uses
FROM daily_feature_usage u
JOIN paid_features p ON p.feature = u.feature
GROUP BY 1, 2;

-- Accounts whose paid-feature use grew week over week: each week an account used paid
-- features more than the week before (a week without use counts as 0).
CREATE VIEW paid_feature_growth AS
SELECT cur.account_id,
       cur.week,
       cur.uses,
       coalesce(prev.uses, 0) AS previous_week_uses,
       cur.uses - coalesce(prev.uses, 0) AS growth
FROM weekly_paid_feature_usage cur
LEFT JOIN weekly_paid_feature_usage prev
       ON prev.account_id = cur.account_id AND prev.week = cur.week - 7
WHERE cur.uses > coalesce(prev.uses, 0);

-- Free-plan accounts on paid features: the plan the event carried (or enrich found) at the
-- time, per account and feature.
CREATE VIEW free_accounts_on_paid_features AS
SELECT e.account_id,
       e.data ->> 'feature' AS feature,
       count(*) AS events,
       count(DISTINCT e.user_id) AS users,
       min(e.received_at) AS first_used,
       max(e.received_at) AS last_used
FROM events e
JOIN paid_features p ON p.feature = e.data ->> 'feature'
WHERE e.name = 'feature.used' AND e.plan = 'free' AND e.account_id IS NOT NULL
GROUP BY 1, 2;

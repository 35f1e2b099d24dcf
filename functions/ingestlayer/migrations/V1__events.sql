-- Every accepted event, once: filtered out of Slack or posted, with what enrich found and
-- what each pipeline made of it. Partitioned by month of received_at, so an old month goes
-- with one DROP TABLE (events_2026_01), never a slow DELETE.
CREATE TABLE events (
    id          text        NOT NULL,
    name        text        NOT NULL,
    source      text        NOT NULL,
    received_at timestamptz NOT NULL,
    -- When it happened, as the sender said (absent when it did not say).
    occurred_at timestamptz,
    user_id     text,
    account_id  text,
    plan        text,
    -- The event's fields, whole.
    data        jsonb       NOT NULL,
    -- What the warehouse looked up: {"user": {...}, "account": {...}}.
    entities    jsonb       NOT NULL DEFAULT '{}',
    -- [{"pipeline": "...", "outcome": "routed" | "filtered", "channels": [...], "reason": "..."}]
    pipelines   jsonb       NOT NULL DEFAULT '[]',
    written_at  timestamptz NOT NULL DEFAULT now(),
    -- An event's received_at never changes: (id, received_at) is its identity, and a
    -- partitioned table's keys must hold the partition key.
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

CREATE INDEX events_by_account ON events (account_id, received_at);
CREATE INDEX events_by_name ON events (name, received_at);

-- The month's partition for `at` (UTC), created when missing. The writers call it for
-- the months of each batch; concurrent callers wait on one lock.
CREATE FUNCTION ingestlayer_ensure_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    part text := 'events_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(part) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('ingestlayer_ensure_partition'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                part, month_start, month_start + interval '1 month');
        END IF;
    END IF;
    RETURN part;
END
$$;

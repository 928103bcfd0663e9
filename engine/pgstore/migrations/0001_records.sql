-- Export records: one row per export, holding its current state. Every
-- transition is a compare-and-set on status (and owner + epoch for the
-- owner's own writes); times come from the database clock.
CREATE TABLE operations_activity_exports (
    id               uuid        PRIMARY KEY,
    status           text        NOT NULL CHECK (status IN ('pending', 'running', 'ready', 'failed', 'cancelled', 'expired')),
    format           text        NOT NULL,
    compression      text        NOT NULL,
    date_from_utc    text        NOT NULL,
    date_to_utc      text        NOT NULL,
    scope_kind       text        NOT NULL,
    scope_ref        text        NOT NULL,
    enterprise_ref   text        NOT NULL,
    client_ref       text        NOT NULL DEFAULT '',
    options          jsonb       NOT NULL DEFAULT '{}',
    generated_by     text        NOT NULL,
    generated_at     timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    finished_at      timestamptz,
    expires_at       timestamptz,
    row_count        bigint      NOT NULL DEFAULT 0,
    byte_size        bigint      NOT NULL DEFAULT 0,
    checksum_sha256  text        NOT NULL DEFAULT '',
    storage_location text        NOT NULL,
    failure_reason   text        NOT NULL DEFAULT '',
    -- The replica running the export, and the fencing epoch of its lease:
    -- bumped by every transition made by someone else, so an owner that
    -- lost its lease can never publish.
    owner            text        NOT NULL,
    epoch            bigint      NOT NULL DEFAULT 1,
    heartbeat_at     timestamptz NOT NULL DEFAULT now()
);

-- List by keyset on the caller's visibility: newest first within an
-- enterprise, a requested scope or a client.
CREATE INDEX operations_activity_exports_enterprise ON operations_activity_exports (enterprise_ref, generated_at DESC, id DESC);
CREATE INDEX operations_activity_exports_scope ON operations_activity_exports (scope_ref, generated_at DESC, id DESC);
CREATE INDEX operations_activity_exports_client ON operations_activity_exports (client_ref, generated_at DESC, id DESC) WHERE client_ref <> '';
-- Background work touches only what is live or due.
CREATE INDEX operations_activity_exports_live ON operations_activity_exports (heartbeat_at) WHERE status IN ('pending', 'running');
CREATE INDEX operations_activity_exports_expiry ON operations_activity_exports (expires_at) WHERE status = 'ready';
CREATE INDEX operations_activity_exports_retention ON operations_activity_exports (finished_at) WHERE status IN ('failed', 'cancelled', 'expired');

-- Idempotency keys: exactly one export per (caller, key), claimed in the
-- transaction that inserts the export.
CREATE TABLE operations_activity_export_keys (
    caller       text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    export_id    uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);
CREATE INDEX operations_activity_export_keys_created ON operations_activity_export_keys (created_at);

-- Completion webhooks (SPEC §8): endpoints and a transactional outbox of
-- deliveries.
--
-- Endpoints carry the resolved parents of their scope exactly like export
-- records (enterprise_ref always; client_ref for an account scope), so
-- coverage is decided on the same facts as an export's visibility.
CREATE TABLE operations_activity_export_webhooks (
    id             uuid        PRIMARY KEY,
    url            text        NOT NULL,
    scope_kind     text        NOT NULL CHECK (scope_kind IN ('enterprise', 'client', 'client_account')),
    scope_ref      text        NOT NULL,
    enterprise_ref text        NOT NULL,
    client_ref     text        NOT NULL DEFAULT '',
    events         text[]      NOT NULL,
    secret         text        NOT NULL,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    -- A deleted endpoint is kept (its deliveries log stays readable to the
    -- purge) until the retention removes it with its deliveries.
    deleted_at     timestamptz
);
-- The trigger below finds the live endpoints of one enterprise; lists are
-- keyset scans on the caller's visibility, like exports.
CREATE INDEX operations_activity_export_webhooks_match ON operations_activity_export_webhooks (enterprise_ref)
    WHERE deleted_at IS NULL;
CREATE INDEX operations_activity_export_webhooks_enterprise ON operations_activity_export_webhooks (enterprise_ref, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX operations_activity_export_webhooks_scope ON operations_activity_export_webhooks (scope_ref, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX operations_activity_export_webhooks_client ON operations_activity_export_webhooks (client_ref, created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND client_ref <> '';
CREATE INDEX operations_activity_export_webhooks_deleted ON operations_activity_export_webhooks (deleted_at)
    WHERE deleted_at IS NOT NULL;

-- One row per (event, endpoint). id is the event's webhook-id: the same on
-- every retry. export is a snapshot of the export record taken when the
-- event happened, so the body (and its signature input) is the same on
-- every retry, even after the record changes or is deleted.
--
-- A delivery is claimed by setting claimed_by, lease_until and bumping
-- claim_epoch (next_attempt_at moves to lease_until, so a dead replica's
-- claim is due again when its lease ends); the outcome is recorded only by
-- the holder of the current claim_epoch.
CREATE TABLE operations_activity_export_webhook_deliveries (
    id              uuid        PRIMARY KEY,
    endpoint_id     uuid        NOT NULL REFERENCES operations_activity_export_webhooks (id) ON DELETE CASCADE,
    event_type      text        NOT NULL,
    export_id       uuid        NOT NULL,
    export          jsonb       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'abandoned')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_by      text,
    lease_until     timestamptz,
    claim_epoch     bigint      NOT NULL DEFAULT 0,
    last_status     int,
    last_error      text        NOT NULL DEFAULT '',
    last_attempt_at timestamptz,
    finished_at     timestamptz
);
-- Claiming and the oldest-undelivered gauge touch pending rows only: the
-- partial indexes' size follows the backlog, never the history.
CREATE INDEX operations_activity_export_webhook_deliveries_due ON operations_activity_export_webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX operations_activity_export_webhook_deliveries_oldest ON operations_activity_export_webhook_deliveries (occurred_at)
    WHERE state = 'pending';
-- Attempts under way, per endpoint (the per-endpoint bound of a claim).
CREATE INDEX operations_activity_export_webhook_deliveries_leased ON operations_activity_export_webhook_deliveries (endpoint_id)
    WHERE state = 'pending' AND lease_until IS NOT NULL;
-- The deliveries log (latest first) and the endpoint cascade.
CREATE INDEX operations_activity_export_webhook_deliveries_endpoint ON operations_activity_export_webhook_deliveries (endpoint_id, occurred_at DESC, id DESC);
-- Retention of delivered and abandoned rows.
CREATE INDEX operations_activity_export_webhook_deliveries_done ON operations_activity_export_webhook_deliveries (finished_at)
    WHERE state <> 'pending';

-- The outbox is filled by a trigger on the export record: whenever a
-- record's status becomes ready, failed, cancelled or expired, in the very
-- transaction that writes that status, one delivery is inserted per live
-- endpoint whose scope covers the export and that asked for the event.
-- Every path that ends an export (pgstore Finish, Cancel, ReapLost,
-- FailOwned, ExpireDue, and any future one) goes through an UPDATE of
-- status, so no final state is ever committed without its events and no
-- event without its state. (Import, which loads history in final states
-- with INSERT, fires nothing: history has no completion to announce.)
--
-- Coverage is that of SPEC §2 on the recorded parents (server/visibility.go):
--   enterprise endpoint E      → exports with enterprise_ref = E;
--   client endpoint C under E  → exports of E whose scope is C or whose client is C (its accounts);
--   account endpoint A under E → exports of E whose scope is A.
CREATE FUNCTION operations_activity_export_webhook_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operations_activity_export_webhook_deliveries (id, endpoint_id, event_type, export_id, export,
        occurred_at, next_attempt_at)
    SELECT gen_random_uuid(), w.id, 'operations_activity_export.' || NEW.status, NEW.id, to_jsonb(NEW),
        date_trunc('milliseconds', now()), now()
    FROM operations_activity_export_webhooks w
    WHERE w.deleted_at IS NULL
      AND w.enterprise_ref = NEW.enterprise_ref
      AND ('operations_activity_export.' || NEW.status) = ANY (w.events)
      AND (w.scope_kind = 'enterprise'
           OR (w.scope_kind = 'client' AND (NEW.scope_ref = w.scope_ref OR NEW.client_ref = w.scope_ref))
           OR (w.scope_kind = 'client_account' AND NEW.scope_ref = w.scope_ref));
    IF FOUND THEN
        -- Wakes the deliverers (LISTEN) at commit; identical notifications of
        -- one transaction are folded into one.
        PERFORM pg_notify('exportd_webhook_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER operations_activity_export_webhook_events
    AFTER UPDATE OF status ON operations_activity_exports
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('ready', 'failed', 'cancelled', 'expired'))
    EXECUTE FUNCTION operations_activity_export_webhook_events();

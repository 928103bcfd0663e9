-- Scheduled exports (SPEC §9). A schedule is immutable once created (only
-- deleted); its runs are the periods it has claimed, one row per period:
-- the primary key (schedule_id, period_start) is the "exactly one export
-- per period" guarantee across replicas. export_id is chosen when the run
-- is claimed, so every replica that later submits the run submits the
-- same export (and its idempotency key, schedules/<id> + period, binds it).
CREATE TABLE operations_activity_export_schedules (
    id              uuid        PRIMARY KEY,
    every           text        NOT NULL CHECK (every IN ('day', 'week', 'month')),
    time_zone       text        NOT NULL,
    starts_at       timestamptz NOT NULL,
    delay_minutes   int         NOT NULL CHECK (delay_minutes BETWEEN 0 AND 1440),
    -- The export template: format, compression, requested scope, options.
    export          jsonb       NOT NULL,
    scope_kind      text        NOT NULL,
    scope_ref       text        NOT NULL,
    -- The scope's parents resolved at creation (the exports' enterprise_ref
    -- and client_ref), also what visibility filters on.
    enterprise_ref  text        NOT NULL,
    client_ref      text        NOT NULL DEFAULT '',
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    deleted         boolean     NOT NULL DEFAULT false,
    -- Sweep bookkeeping: the end of the latest claimed period (periods
    -- before it are never claimed again) and when the next one is due.
    claimed_through timestamptz,
    next_due_at     timestamptz NOT NULL
);
CREATE INDEX operations_activity_export_schedules_enterprise ON operations_activity_export_schedules (enterprise_ref, created_at DESC, id DESC) WHERE NOT deleted;
CREATE INDEX operations_activity_export_schedules_scope ON operations_activity_export_schedules (scope_ref, created_at DESC, id DESC) WHERE NOT deleted;
CREATE INDEX operations_activity_export_schedules_client ON operations_activity_export_schedules (client_ref, created_at DESC, id DESC) WHERE NOT deleted AND client_ref <> '';
CREATE INDEX operations_activity_export_schedules_due ON operations_activity_export_schedules (next_due_at) WHERE NOT deleted;

CREATE TABLE operations_activity_export_schedule_runs (
    schedule_id  uuid        NOT NULL REFERENCES operations_activity_export_schedules (id),
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    export_id    uuid        NOT NULL UNIQUE,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    -- Set once the export record is known to exist; until then any
    -- replica's sweep (re)submits the run.
    submitted_at timestamptz,
    CONSTRAINT operations_activity_export_schedule_runs_one_per_period UNIQUE (schedule_id, period_start)
);
CREATE INDEX operations_activity_export_schedule_runs_open ON operations_activity_export_schedule_runs (period_start) WHERE submitted_at IS NULL;

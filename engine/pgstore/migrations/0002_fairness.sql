-- Fairness between tenants (SPEC §4 EXPORTD_MAX_EXPORTS_PER_ENTERPRISE,
-- EXPORTD_MAX_PENDING_PER_ENTERPRISE): the live exports of one enterprise
-- are counted at every start and create, so they get their own small
-- partial index (live rows only: its size follows the load, not history).
CREATE INDEX operations_activity_exports_enterprise_live ON operations_activity_exports (enterprise_ref, status)
	WHERE status IN ('pending', 'running');

-- Waiting tasks may carry a timer (a durable sleep, a human step's timeout), so the
-- claimable set now includes them; a waiting task without a timer has next_run_at NULL
-- and stays out of the index's range. A running task's next_run_at is now its lease's
-- expiry, so a claim probing for due work skips live leases without reading them.
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (next_run_at, seq) WHERE status IN ('queued', 'running', 'waiting');
UPDATE tasks SET next_run_at = lease_expires_at WHERE status = 'running';
